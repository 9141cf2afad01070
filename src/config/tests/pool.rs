//! `tether.pools` and endpoints.

use super::*;

#[test]
fn minimum_origins_bound() {
    let three = MINIMAL.replace(
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n",
            "        - { name: web-1, address: \"127.0.0.1:9001\" }\n        - { name: web-2, address: \"127.0.0.1:9002\" }\n        - { name: web-3, address: \"127.0.0.1:9003\" }\n",
        );
    let with = |n: &str| {
        three.replace(
            "    primary:\n",
            &format!("    primary:\n      minimum_origins: {n}\n"),
        )
    };
    assert_eq!(
            errors(&with("5")),
            vec!["tether.pools.primary.minimum_origins: must be between 1 and 3 (the number of endpoints), got 5"]
        );
    assert_eq!(
            errors(&with("0")),
            vec!["tether.pools.primary.minimum_origins: must be between 1 and 3 (the number of endpoints), got 0"]
        );
    assert_eq!(ok(&with("3")).tether.pools["primary"].minimum_origins, 3);
    assert_eq!(
        errors(&with("1.5")),
        vec!["tether.pools.primary.minimum_origins: expected an integer, got a number (1.5)"]
    );
}
