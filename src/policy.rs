//! Eligibility: may one agent fetch another agent's prekeys (and so message it)?
//!
//! The facts come from the key server (`keyserver.eligibility_facts`, whose JSON maps onto
//! [`EligibilityFacts`] field for field); [`evaluate`] turns them into a [`Decision`] with a
//! stable [`Reason`]. The rule, in order:
//!
//! 1. Any block in either direction denies (`blocked_by_caller`, `blocked_by_target`).
//! 2. Otherwise any one relationship allows: the same owner, a contact made earlier through an
//!    invite, a shared community, an AI2AI connection whose entanglement score or compatibility
//!    score is at or above its threshold, or a valid invite token from the target.
//! 3. Otherwise deny, saying why (a connection below both thresholds, an invalid invite, or no
//!    relationship at all).
//!
//! The same code runs natively in the app and as WASM in the gateway; it is pure and total.
//! A missing target has no facts and so looks exactly like an unrelated one.

use serde::{Deserialize, Serialize};

/// AI2AI connection scores in \[0, 1\].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionScores {
    /// The entanglement score.
    pub entanglement_score: f64,
    /// The compatibility score.
    pub compatibility_score: f64,
}

/// The thresholds a connection must meet (at or above either one).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Minimum entanglement score.
    pub min_entanglement_score: f64,
    /// Minimum compatibility score.
    pub min_compatibility_score: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            min_entanglement_score: 0.5,
            min_compatibility_score: 0.5,
        }
    }
}

/// What the caller said about an invite token and what the key server found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteFacts {
    /// The request carried an invite token.
    #[serde(default)]
    pub presented: bool,
    /// The token is an unexpired invite from the target, unused or used by this caller.
    #[serde(default)]
    pub valid: bool,
}

/// Everything the policy needs about (caller, target).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EligibilityFacts {
    /// Caller and target agents belong to the same user.
    #[serde(default)]
    pub same_owner: bool,
    /// The caller blocked the target (agent or its owner). Required: facts that do not say
    /// are refused rather than read as "no block".
    pub blocked_by_caller: bool,
    /// The target blocked the caller (agent or its owner). Required.
    pub blocked_by_target: bool,
    /// Communities both are current members of.
    #[serde(default)]
    pub shared_communities: Vec<String>,
    /// The AI2AI connection between the two agents, if any.
    #[serde(default)]
    pub connection: Option<ConnectionScores>,
    /// The invite token of this request.
    #[serde(default)]
    pub invite: InviteFacts,
    /// The two agents became contacts through a used invite earlier.
    #[serde(default)]
    pub contact_via_invite: bool,
    /// The connection thresholds in force. Required.
    pub thresholds: Thresholds,
}

/// Why a decision was made (stable snake_case codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Denied: the caller blocked the target.
    BlockedByCaller,
    /// Denied: the target blocked the caller.
    BlockedByTarget,
    /// Allowed: both agents belong to the same user.
    SameOwner,
    /// Allowed: the agents became contacts through an invite earlier.
    ContactViaInvite,
    /// Allowed: they share a community.
    SharedCommunity,
    /// Allowed: an AI2AI connection at or above a threshold.
    Ai2aiConnection,
    /// Allowed: a valid invite token from the target.
    InviteToken,
    /// Denied: an AI2AI connection exists but both scores are below their thresholds.
    ScoreBelowThreshold,
    /// Denied: the invite token presented is not valid (and nothing else allows).
    InviteInvalid,
    /// Denied: no relationship at all (also what a missing target looks like).
    NoRelationship,
}

impl Reason {
    /// The snake_case code.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::BlockedByCaller => "blocked_by_caller",
            Self::BlockedByTarget => "blocked_by_target",
            Self::SameOwner => "same_owner",
            Self::ContactViaInvite => "contact_via_invite",
            Self::SharedCommunity => "shared_community",
            Self::Ai2aiConnection => "ai2ai_connection",
            Self::InviteToken => "invite_token",
            Self::ScoreBelowThreshold => "score_below_threshold",
            Self::InviteInvalid => "invite_invalid",
            Self::NoRelationship => "no_relationship",
        }
    }
}

/// The outcome of [`evaluate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the caller may fetch the target's prekeys.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    const fn allow(reason: Reason) -> Self {
        Self {
            allowed: true,
            reason,
        }
    }

    const fn deny(reason: Reason) -> Self {
        Self {
            allowed: false,
            reason,
        }
    }
}

impl ConnectionScores {
    /// At or above either threshold. NaN scores or thresholds never qualify.
    #[must_use]
    pub fn meets(&self, thresholds: &Thresholds) -> bool {
        self.entanglement_score >= thresholds.min_entanglement_score
            || self.compatibility_score >= thresholds.min_compatibility_score
    }
}

/// Decides eligibility from the facts (see the module docs for the rule).
#[must_use]
pub fn evaluate(facts: &EligibilityFacts) -> Decision {
    if facts.blocked_by_caller {
        return Decision::deny(Reason::BlockedByCaller);
    }
    if facts.blocked_by_target {
        return Decision::deny(Reason::BlockedByTarget);
    }
    if facts.same_owner {
        return Decision::allow(Reason::SameOwner);
    }
    if facts.contact_via_invite {
        return Decision::allow(Reason::ContactViaInvite);
    }
    if !facts.shared_communities.is_empty() {
        return Decision::allow(Reason::SharedCommunity);
    }
    if let Some(connection) = &facts.connection
        && connection.meets(&facts.thresholds)
    {
        return Decision::allow(Reason::Ai2aiConnection);
    }
    if facts.invite.valid {
        return Decision::allow(Reason::InviteToken);
    }
    if facts.connection.is_some() {
        return Decision::deny(Reason::ScoreBelowThreshold);
    }
    if facts.invite.presented {
        return Decision::deny(Reason::InviteInvalid);
    }
    Decision::deny(Reason::NoRelationship)
}

/// Parses the key server's facts JSON and decides.
pub fn evaluate_json(facts: &str) -> Result<Decision, serde_json::Error> {
    serde_json::from_str::<EligibilityFacts>(facts).map(|facts| evaluate(&facts))
}
