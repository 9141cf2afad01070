//! Configuration: the file layer (YAML walked strictly, every error collected
//! with its full key path) and the typed layer ([`model`]) the rest reads.

pub mod load;
pub mod model;
pub mod read;

#[allow(unused_imports)]
pub use load::{load_balancer_from_value, load_balancer_to_value, load_file, load_str, Loaded};
pub use model::*;
#[allow(unused_imports)]
pub use read::{ConfigError, ConfigErrors};
