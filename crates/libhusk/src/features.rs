//! `husk features`: what this runtime and this host support, in runc's JSON shape.

pub fn features() -> serde_json::Value {
    serde_json::json!({})
}
