//! `GET /metrics`: Prometheus text, rendered by [`crate::metrics`].

use super::call::Call;
use super::response::{allow, AdminResponse, Answer};

pub const PROMETHEUS: &str = "text/plain; version=0.0.4";

pub fn handle(call: &Call<'_>) -> Answer {
    allow(call.method, &["GET"])?;
    let mut text = super::exposition::render(call.state());
    if let Some(cluster) = call.cluster {
        text.push_str(&super::exposition::render_cluster(cluster));
    }
    Ok(AdminResponse::new(200, PROMETHEUS, text.into_bytes()))
}
