//! The two-person rule: an operator asks to advance into a protected
//! phase; another operator approves (and the advance is made at once) or
//! denies. Both are audited. A request holds for the rollout's position
//! when it was made (its generation); once the rollout moved on, it lapses.

use chrono::Utc;
use serde_json::json;

use super::{Ask, Done, Refusal, Service, ServiceError};
use crate::audit::NewAuditEntry;
use crate::domain::principal::Behind;
use crate::domain::{Action, Outcome, Principal, RolloutId, text};
use crate::rollout::{Command, Rollout};
use crate::store::ApprovalRow;

/// Whether a request still applies to the rollout as it stands.
fn applies(a: &ApprovalRow, r: &Rollout) -> bool {
    a.rollout_id == r.id.0
        && a.generation == r.generation
        && a.from_phase == r.phase_index as i64
        && !r.state.is_terminal()
}

impl Service {
    /// The granted approval for the rollout's next (protected) phase, if any.
    pub async fn granted_approval(&self, r: &Rollout) -> Result<Option<ApprovalRow>, ServiceError> {
        Ok(self
            .store
            .approvals_of(r.id)
            .await?
            .into_iter()
            .find(|a| a.state == "approved" && applies(a, r)))
    }

    /// Closes a pending request the rollout has moved on from.
    async fn lapse_if_moved(&self, r: &Rollout) -> Result<(), ServiceError> {
        for a in self.store.approvals_of(r.id).await? {
            if a.state == "pending" && !applies(&a, r) {
                let entry = NewAuditEntry::new(
                    &Principal::System,
                    Action::ApprovalDenied,
                    Outcome::Applied,
                )
                .rollout(r.id, &r.phase_name)
                .reason(Some("the rollout moved on since it was asked".into()))
                .detail(json!({ "approval": a.id, "to_phase": a.to_phase, "lapsed": true }));
                self.store
                    .decide_approval(
                        a.id,
                        "denied",
                        Principal::System.actor(),
                        Utc::now(),
                        Some("lapsed: the rollout moved on"),
                        entry,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// The rollout's requests, newest first.
    pub async fn approvals(&self, id: RolloutId) -> Result<Vec<ApprovalRow>, ServiceError> {
        self.rollout(id).await?;
        Ok(self.store.approvals_of(id).await?)
    }

    /// Asks for approval to advance rollout `id` into its next phase, which
    /// must be protected. `force` (with a reason) asks to promote past
    /// failing bake time or gates too.
    pub async fn request_approval(
        &self,
        who: &Principal,
        id: RolloutId,
        reason: Option<String>,
        force: bool,
    ) -> Result<ApprovalRow, ServiceError> {
        let reason = text::reason(reason)?;
        if force && reason.is_none() {
            return Err(ServiceError::BadInput(
                "a forced advance needs a reason".into(),
            ));
        }
        let r = self.rollout(id).await?;
        if r.state.is_terminal() {
            return Err(Refusal::Busy(format!("rollout {id} has ended")).into());
        }
        let plan = r
            .plan()
            .map_err(|e| ServiceError::Refused(Refusal::Busy(e.to_string())))?;
        let Some(next) = plan.phases.get(r.phase_index) else {
            return Err(Refusal::Busy(format!("rollout {id} has no next phase to approve")).into());
        };
        if !next.protected {
            return Err(ServiceError::BadInput(format!(
                "phase {} is not protected: advance it directly",
                next.name
            )));
        }
        if self.granted_approval(&r).await?.is_some() {
            return Err(Refusal::Busy(format!(
                "entering {} is already approved: advance it",
                next.name
            ))
            .into());
        }
        self.lapse_if_moved(&r).await?;
        let now = Utc::now();
        let request = ApprovalRow {
            id: 0,
            rollout_id: id.0,
            from_phase: r.phase_index as i64,
            to_phase: next.name.clone(),
            generation: r.generation,
            force,
            requested_by: who.actor().to_string(),
            requested_at: now,
            reason: reason.clone(),
            state: "pending".into(),
            decided_by: None,
            decided_at: None,
            decision_reason: None,
        };
        let entry = NewAuditEntry::new(who, Action::ApprovalRequested, Outcome::Accepted)
            .rollout(id, &r.phase_name)
            .reason(reason)
            .detail(json!({ "to_phase": next.name, "force": force }));
        Ok(self.store.insert_approval(&request, entry).await?)
    }

    /// Approves (and then makes the advance, as `who`) or denies a pending
    /// request. Nobody approves their own request; either may deny it
    /// (withdrawing it). An approval whose advance is then refused (not
    /// ready, say) stays granted for this position: advance again later.
    pub async fn decide(
        &self,
        who: &Principal,
        id: RolloutId,
        approval: i64,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Option<Done>, ServiceError> {
        let reason = text::reason(reason)?;
        let a = self
            .store
            .approval(approval)
            .await?
            .filter(|a| a.rollout_id == id.0)
            .ok_or_else(|| {
                ServiceError::NotFound(format!("rollout {id} has no approval request #{approval}"))
            })?;
        if a.state != "pending" {
            return Err(Refusal::Busy(format!(
                "request #{approval} was already {} by {}",
                a.state,
                a.decided_by.as_deref().unwrap_or("?")
            ))
            .into());
        }
        if approve && self.same_person(&a.requested_by, who.actor()).await? {
            let via = if a.requested_by == who.actor() {
                String::new()
            } else {
                format!(" as {}", a.requested_by)
            };
            return Err(ServiceError::Forbidden(format!(
                "you ({}) asked for this approval{via}: a second operator must approve it",
                who.actor()
            )));
        }
        let r = self.rollout(id).await?;
        if !applies(&a, &r) {
            self.lapse_if_moved(&r).await?;
            return Err(Refusal::Busy(format!(
                "rollout {id} moved on since request #{approval} was made (it is now {} in phase {}); the request lapsed: ask again",
                r.state.as_str(),
                r.phase_name
            ))
            .into());
        }
        let (state, action) = if approve {
            ("approved", Action::ApprovalGranted)
        } else {
            ("denied", Action::ApprovalDenied)
        };
        let entry = NewAuditEntry::new(who, action, Outcome::Applied)
            .rollout(id, &r.phase_name)
            .reason(reason.clone())
            .detail(
                json!({ "approval": a.id, "to_phase": a.to_phase, "requested_by": a.requested_by }),
            );
        if !self
            .store
            .decide_approval(
                a.id,
                state,
                who.actor(),
                Utc::now(),
                reason.as_deref(),
                entry,
            )
            .await?
        {
            return Err(Refusal::Busy(format!("request #{approval} was decided meanwhile")).into());
        }
        if !approve {
            return Ok(None);
        }
        let ask = Ask {
            reason: a.reason.clone().or(reason),
            force: a.force,
            ..Ask::default()
        };
        self.command(who, id, Command::Advance, ask).await.map(Some)
    }
}

impl Service {
    /// Whether two actors may be one person for the two-person rule: the
    /// same name however signed in, or one is a token the other made
    /// (directly or through tokens it made). Tokens an admin made for two
    /// different operators stay two people.
    async fn same_person(&self, a: &str, b: &str) -> Result<bool, ServiceError> {
        let (a_chain, b_chain) = (self.makers(a).await?, self.makers(b).await?);
        Ok(a_chain.contains(&b_chain[0]) || b_chain.contains(&a_chain[0]))
    }

    /// The person (or token) behind an actor, then whoever made it, and so
    /// on: `token:ci` made by `user:ada` gives `["token:ci", "ada"]`.
    async fn makers(&self, actor: &str) -> Result<Vec<String>, ServiceError> {
        let mut chain = Vec::new();
        let mut actor = actor.to_string();
        // A short chain, never a loop (a token's maker existed before it),
        // but bounded all the same.
        loop {
            if chain.len() >= 8 {
                // Fail closed: whoever cannot be traced approves nothing.
                return Err(ServiceError::Forbidden(format!(
                    "cannot tell who is behind {}: its tokens were made by tokens too many times over",
                    chain[0]
                )));
            }
            match Principal::behind(&actor) {
                Behind::Person(name) => {
                    chain.push(name.to_string());
                    return Ok(chain);
                }
                Behind::Token(name) => {
                    chain.push(actor.clone());
                    match self.store.token_by_name(name).await? {
                        Some(token) => actor = token.created_by,
                        None => return Ok(chain),
                    }
                }
            }
        }
    }
}
