//! The Server state machine: which `status.state` transitions exist, which controller writes
//! each of them, and which controller may drive a server's BMC in each state.
//!
//! A controller that wants a server in another state asks through the API (a claim, a
//! maintenance object, an annotation) and waits; only the owner of a transition writes it, with
//! the Server's `resourceVersion` as precondition.
//!
//! | from | to | written by |
//! |---|---|---|
//! | (none) | Initial | discovery |
//! | Initial | Discovery | discovery |
//! | Discovery | Available | discovery |
//! | Discovery | Initial (timeout) | discovery |
//! | Initial, Discovery, Available | Error | discovery (BMC gone too long, inventory unreadable) |
//! | Error | Initial | discovery (its cause is gone, or `retry`) |
//! | (none) | Reserved (adopting a server that already has a claim) | reservation |
//! | Available | Reserved | reservation |
//! | Reserved | Released, Available | reservation |
//! | Reserved | Cleaning | reservation (a `Recycle` release with cleaning enabled) |
//! | Released | Available | reservation |
//! | Available, Reserved | Maintenance, Parked | maintenance |
//! | Maintenance, Parked | Initial, Available, Reserved | maintenance |
//! | Cleaning | Available, Error | maintenance (cleaning succeeded / failed) |
//! | Error | Cleaning | maintenance (`retry` of a failed cleaning) |

pub use crate::server::ServerState;

closed_enum! {
    /// The deployables that may write a Server's state or drive its BMC.
    pub enum Controller {
        /// `metal-discovery`: BMCs, inventory, the discovery boot.
        Discovery = "discovery",
        /// `metal-reservation`: claim binding and release.
        Reservation = "reservation",
        /// `metal-provisioning`: boot configurations, power and boot of servers in use.
        Provisioning = "provisioning",
        /// `metal-maintenance`: maintenance, parking, firmware and settings.
        Maintenance = "maintenance",
    }
}

impl Controller {
    /// Field manager name this controller uses for server-side apply.
    pub const fn field_manager(&self) -> &'static str {
        match self {
            Controller::Discovery => "metal-discovery",
            Controller::Reservation => "metal-reservation",
            Controller::Provisioning => "metal-provisioning",
            Controller::Maintenance => "metal-maintenance",
        }
    }
}

/// The controller that writes the transition `from` → `to`, or `None` if the transition does
/// not exist. Staying in the same state is not a transition.
pub fn transition_owner(from: Option<ServerState>, to: ServerState) -> Option<Controller> {
    use ServerState::*;
    let owner = match (from, to) {
        (None, Initial)
        // Out-of-band: the inventory is read and recorded in one write.
        | (None | Some(Initial), Available)
        | (Some(Initial), Discovery)
        | (Some(Discovery), Available)
        | (Some(Discovery), Initial)
        | (Some(Initial | Discovery | Available), Error)
        | (Some(Error), Initial) => Controller::Discovery,
        (None, Reserved)
        | (Some(Available), Reserved)
        | (Some(Reserved), Released | Available | Cleaning)
        | (Some(Released), Available) => Controller::Reservation,
        (Some(Available | Reserved), Maintenance | Parked)
        | (Some(Maintenance | Parked), Initial | Available | Reserved)
        | (Some(Cleaning), Available | Error)
        | (Some(Error), Cleaning) => Controller::Maintenance,
        _ => return None,
    };
    Some(owner)
}

/// Whether `from` → `to` is a transition of the state machine.
pub fn transition_allowed(from: Option<ServerState>, to: ServerState) -> bool {
    transition_owner(from, to).is_some()
}

/// The controller allowed to cause side effects on a server's BMC (power, boot, resets,
/// firmware) while the server is in `state`.
pub fn side_effect_owner(state: ServerState) -> Controller {
    match state {
        ServerState::Initial | ServerState::Discovery | ServerState::Error => Controller::Discovery,
        ServerState::Available | ServerState::Reserved | ServerState::Released => {
            Controller::Provisioning
        }
        ServerState::Maintenance | ServerState::Parked | ServerState::Cleaning => {
            Controller::Maintenance
        }
    }
}

/// Every transition of the state machine with its owner, for documentation and tests.
pub fn transitions() -> Vec<(Option<ServerState>, ServerState, Controller)> {
    let froms = std::iter::once(None).chain(ServerState::ALL.iter().copied().map(Some));
    froms
        .flat_map(|from| {
            ServerState::ALL
                .iter()
                .filter_map(move |&to| transition_owner(from, to).map(|c| (from, to, c)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ServerState::*;
    use super::*;

    const D: Controller = Controller::Discovery;
    const R: Controller = Controller::Reservation;
    const M: Controller = Controller::Maintenance;

    /// The complete list of allowed transitions; anything else must be rejected.
    const EXPECTED: &[(Option<ServerState>, ServerState, Controller)] = &[
        (None, Initial, D),
        (None, Available, D),
        (Some(Initial), Available, D),
        (Some(Initial), Discovery, D),
        (Some(Discovery), Available, D),
        (Some(Discovery), Initial, D),
        (Some(Initial), Error, D),
        (Some(Discovery), Error, D),
        (Some(Available), Error, D),
        (Some(Error), Initial, D),
        (None, Reserved, R),
        (Some(Available), Reserved, R),
        (Some(Reserved), Released, R),
        (Some(Reserved), Available, R),
        (Some(Reserved), Cleaning, R),
        (Some(Released), Available, R),
        (Some(Available), Maintenance, M),
        (Some(Reserved), Maintenance, M),
        (Some(Available), Parked, M),
        (Some(Reserved), Parked, M),
        (Some(Maintenance), Initial, M),
        (Some(Maintenance), Available, M),
        (Some(Maintenance), Reserved, M),
        (Some(Parked), Initial, M),
        (Some(Parked), Available, M),
        (Some(Parked), Reserved, M),
        (Some(Cleaning), Available, M),
        (Some(Cleaning), Error, M),
        (Some(Error), Cleaning, M),
    ];

    #[test]
    fn every_expected_transition_is_allowed_with_its_owner() {
        for &(from, to, owner) in EXPECTED {
            assert!(transition_allowed(from, to), "{from:?} -> {to:?}");
            assert_eq!(
                transition_owner(from, to),
                Some(owner),
                "{from:?} -> {to:?}"
            );
        }
    }

    #[test]
    fn nothing_else_is_allowed() {
        let all = transitions();
        assert_eq!(all.len(), EXPECTED.len());
        for t in &all {
            assert!(EXPECTED.contains(t), "unexpected transition {t:?}");
        }
    }

    #[test]
    fn sample_of_rejected_transitions() {
        let rejected = [
            (Some(Initial), Reserved),
            (Some(Discovery), Reserved),
            (Some(Available), Discovery),
            (Some(Available), Released),
            (Some(Released), Reserved),
            (Some(Error), Available),
            (Some(Maintenance), Parked),
            (Some(Parked), Maintenance),
            (Some(Initial), Maintenance),
            (Some(Released), Parked),
            (None, Maintenance),
            (Some(Cleaning), Reserved),
            (Some(Available), Cleaning),
            (Some(Reserved), Error),
            (Some(Released), Cleaning),
        ];
        for (from, to) in rejected {
            assert!(!transition_allowed(from, to), "{from:?} -> {to:?}");
            assert_eq!(transition_owner(from, to), None);
        }
    }

    #[test]
    fn staying_is_not_a_transition() {
        for &s in ServerState::ALL {
            assert!(!transition_allowed(Some(s), s), "{s:?}");
        }
    }

    #[test]
    fn side_effect_owner_per_state() {
        assert_eq!(side_effect_owner(Initial), D);
        assert_eq!(side_effect_owner(Discovery), D);
        assert_eq!(side_effect_owner(Error), D);
        for s in [Available, Reserved, Released] {
            assert_eq!(side_effect_owner(s), Controller::Provisioning);
        }
        assert_eq!(side_effect_owner(Maintenance), M);
        assert_eq!(side_effect_owner(Parked), M);
        assert_eq!(side_effect_owner(Cleaning), M);
    }

    #[test]
    fn reservation_never_drives_a_bmc() {
        for &s in ServerState::ALL {
            assert_ne!(side_effect_owner(s), R);
        }
    }

    #[test]
    fn field_managers() {
        assert_eq!(Controller::Discovery.field_manager(), "metal-discovery");
        assert_eq!(Controller::Maintenance.field_manager(), "metal-maintenance");
    }
}
