//! The JSON merge patches metalctl writes (pure). Each touches exactly the field the owning
//! controller reads, nothing else, and is sent with the one field manager [`FIELD_MANAGER`].

use api::constants::{MAINTENANCE_APPROVED_LABEL, OPERATION_ANNOTATION, Operation};
use serde_json::{Value, json};

/// Field manager of every metalctl write.
pub const FIELD_MANAGER: &str = "metalctl";

/// Cordon (`spec.unclaimable: true`) or uncordon (`false`, the CRD's default, which the
/// apiserver would fill in for a removed field anyway); reservation binds no new claim to an
/// unclaimable server.
pub fn cordon(on: bool) -> Value {
    json!({ "spec": { "unclaimable": on } })
}

/// Requests park or unpark: maintenance's park flow acts on the `operation` annotation and
/// writes the `parked` marker itself.
pub fn operation(op: Operation) -> Value {
    json!({ "metadata": { "annotations": { OPERATION_ANNOTATION: op.as_str() } } })
}

/// The owner's approval on a ServerClaim, as maintenance's plan reads it.
pub fn approve() -> Value {
    json!({ "metadata": { "labels": { MAINTENANCE_APPROVED_LABEL: "true" } } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_touch_one_field() {
        assert_eq!(cordon(true), json!({ "spec": { "unclaimable": true } }));
        assert_eq!(cordon(false), json!({ "spec": { "unclaimable": false } }));
        assert_eq!(
            operation(Operation::Park),
            json!({ "metadata": { "annotations": { "metal.ironcore.dev/operation": "park" } } })
        );
        assert_eq!(
            operation(Operation::Unpark),
            json!({ "metadata": { "annotations": { "metal.ironcore.dev/operation": "unpark" } } })
        );
        assert_eq!(
            approve(),
            json!({ "metadata": { "labels": { "metal.ironcore.dev/maintenance-approved": "true" } } })
        );
    }
}
