//! `GET /v1/cluster`: this replica's link to the cluster — connected or
//! not, when it last resynced in full, what it wrote, received and dropped —
//! and the replicas it last saw in Redis.

use super::call::Call;
use super::response::{allow, AdminResponse, Answer, ApiError};

pub fn handle(call: &Call<'_>) -> Answer {
    allow(call.method, &["GET"])?;
    let Some(status) = call.cluster else {
        return Err(ApiError::new(
            404,
            "no cluster: tether.cluster is not set, this process runs alone",
        ));
    };
    Ok(AdminResponse::ok(&status.view(crate::clock::unix_ms())))
}
