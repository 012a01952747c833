//! `policy`: the eligibility rule, its reason codes, and the key server's facts JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use spots_signal::policy::{
    ConnectionScores, EligibilityFacts, InviteFacts, Reason, Thresholds, evaluate, evaluate_json,
};

fn facts() -> EligibilityFacts {
    EligibilityFacts::default()
}

fn decide(f: &EligibilityFacts) -> (bool, Reason) {
    let d = evaluate(f);
    (d.allowed, d.reason)
}

fn scores(entanglement: f64, compatibility: f64) -> Option<ConnectionScores> {
    Some(ConnectionScores {
        entanglement_score: entanglement,
        compatibility_score: compatibility,
    })
}

#[test]
fn nothing_in_common_denies() {
    assert_eq!(decide(&facts()), (false, Reason::NoRelationship));
}

#[test]
fn each_relationship_allows() {
    let mut f = facts();
    f.same_owner = true;
    assert_eq!(decide(&f), (true, Reason::SameOwner));
    let mut f = facts();
    f.contact_via_invite = true;
    assert_eq!(decide(&f), (true, Reason::ContactViaInvite));
    let mut f = facts();
    f.shared_communities = vec!["c1".into()];
    assert_eq!(decide(&f), (true, Reason::SharedCommunity));
    let mut f = facts();
    f.invite = InviteFacts {
        presented: true,
        valid: true,
    };
    assert_eq!(decide(&f), (true, Reason::InviteToken));
}

#[test]
fn connection_scores_at_or_above_either_threshold() {
    let mut f = facts();
    f.thresholds = Thresholds {
        min_entanglement_score: 0.6,
        min_compatibility_score: 0.7,
    };
    for (e, c, allowed) in [
        (0.6, 0.0, true),
        (0.0, 0.7, true),
        (0.9, 0.9, true),
        (0.59, 0.69, false),
        (0.0, 0.0, false),
        (f64::NAN, f64::NAN, false),
    ] {
        f.connection = scores(e, c);
        let expected = if allowed {
            (true, Reason::Ai2aiConnection)
        } else {
            (false, Reason::ScoreBelowThreshold)
        };
        assert_eq!(decide(&f), expected, "scores {e} {c}");
    }
}

#[test]
fn any_block_in_either_direction_denies_whatever_else_holds() {
    let mut f = facts();
    f.same_owner = true;
    f.contact_via_invite = true;
    f.shared_communities = vec!["c1".into()];
    f.connection = scores(1.0, 1.0);
    f.invite = InviteFacts {
        presented: true,
        valid: true,
    };
    assert!(evaluate(&f).allowed);
    f.blocked_by_target = true;
    assert_eq!(decide(&f), (false, Reason::BlockedByTarget));
    f.blocked_by_caller = true;
    assert_eq!(decide(&f), (false, Reason::BlockedByCaller));
    f.blocked_by_target = false;
    assert_eq!(decide(&f), (false, Reason::BlockedByCaller));
}

#[test]
fn an_invalid_invite_says_so() {
    let mut f = facts();
    f.invite.presented = true;
    assert_eq!(decide(&f), (false, Reason::InviteInvalid));
    f.connection = scores(0.1, 0.1);
    assert_eq!(decide(&f), (false, Reason::ScoreBelowThreshold));
}

#[test]
fn the_key_servers_facts_json_maps_directly() {
    // The exact shape keyserver.eligibility_facts returns (numeric settings are JSON numbers).
    let json = r#"{
        "same_owner": false,
        "blocked_by_caller": false,
        "blocked_by_target": false,
        "shared_communities": ["0b6f5d8e-6c8e-4c1c-9a43-5a0d2c7f1e11"],
        "connection": null,
        "invite": {"presented": false, "valid": false},
        "contact_via_invite": false,
        "thresholds": {"min_entanglement_score": 0.5, "min_compatibility_score": 0.5}
    }"#;
    let decision = evaluate_json(json).unwrap();
    assert!(decision.allowed);
    assert_eq!(decision.reason.code(), "shared_community");
    assert_eq!(
        serde_json::to_string(&decision).unwrap(),
        r#"{"allowed":true,"reason":"shared_community"}"#
    );
    let json = r#"{"same_owner": false, "blocked_by_caller": false, "blocked_by_target": true,
        "shared_communities": [], "connection": {"entanglement_score": 0.9, "compatibility_score": 0.1},
        "invite": {"presented": true, "valid": true}, "contact_via_invite": false,
        "thresholds": {"min_entanglement_score": 0.5, "min_compatibility_score": 0.5}}"#;
    assert_eq!(evaluate_json(json).unwrap().reason, Reason::BlockedByTarget);
    // Unknown fields are refused rather than silently ignored.
    assert!(evaluate_json(r#"{"same_owner": true, "is_admin": true}"#).is_err());
    // Facts that do not state the blocks are refused, never read as "no block".
    assert!(
        evaluate_json(r#"{"same_owner": true, "thresholds": {"min_entanglement_score": 0.5, "min_compatibility_score": 0.5}}"#)
            .is_err()
    );
    assert!(evaluate_json("[]").is_err());
}

#[test]
fn decisions_are_deterministic() {
    let mut f = facts();
    f.connection = scores(0.5, 0.2);
    let first = evaluate(&f);
    for _ in 0..100 {
        assert_eq!(evaluate(&f), first);
    }
}
