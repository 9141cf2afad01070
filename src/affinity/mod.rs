//! Session affinity (SPEC 4): session keys, the `__cflb` cookie codec, the
//! session table and drain — pure pieces, no I/O; `crate::proxy` connects them.
pub mod cookie;
pub mod cookie_header;
pub mod decision;
pub mod drain;
pub mod key;
pub mod table;
