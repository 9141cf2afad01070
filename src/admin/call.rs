//! One authorised call, as a resource handler sees it: what the [`router`]
//! hands every resource file. It sits in a file of its own so that the
//! resources import it and the router imports the resources, never the way
//! back (no import cycles between files: `scripts/import_cycles.sh`).
//!
//! [`router`]: super::router

use std::sync::Arc;

use crate::changes::{Change, ChangeError, Changes};
use crate::clock::Now;
use crate::state::State;

/// One authorised call, as a resource handler sees it.
pub struct Call<'a> {
    /// `HEAD` is `GET` (Pingora leaves the body out).
    pub method: &'a str,
    pub body: &'a [u8],
    pub now: Now,
    changes: &'a Changes,
    /// The state when the call arrived (a reload may replace it meanwhile).
    state: Arc<State>,
    /// This replica's link to the cluster, when `tether.cluster` is set.
    pub cluster: Option<&'a crate::cluster::Status>,
}

impl<'a> Call<'a> {
    /// A call on the state as it is now.
    pub fn new(
        method: &'a str,
        body: &'a [u8],
        now: Now,
        changes: &'a Changes,
        cluster: Option<&'a crate::cluster::Status>,
    ) -> Self {
        Call {
            method,
            body,
            now,
            changes,
            state: changes.state(),
            cluster,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The owner of changes (its objects: [`Changes::objects`]).
    pub fn changes(&self) -> &'a Changes {
        self.changes
    }

    /// Hands a batch to the owner of changes.
    pub fn apply(&self, batch: &[Change]) -> Result<Vec<String>, ChangeError> {
        self.changes.apply("admin", batch, self.now)
    }
}
