//! Plans name AppConfig resources by name or id; the control plane wants
//! ids. Names are not unique in AppConfig, so a name that two resources
//! share is refused (name it by id).

use aws_sdk_appconfig::Client;

use super::step_of;
use crate::backend::lambda_env::Step;
use crate::plan::AppConfigTarget;

/// The target's resources, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub application_id: String,
    pub environment_id: String,
    pub environment_name: String,
    pub profile_id: String,
    pub profile_name: String,
    pub strategy_id: String,
    pub rollback_strategy_id: String,
}

/// `(id, name)` pairs of one listing.
type Listed = Vec<(String, String)>;

/// The one resource `wanted` names, by id first, then by name.
pub fn pick(listed: &Listed, wanted: &str, what: &str) -> Result<(String, String), Step> {
    if let Some(hit) = listed.iter().find(|(id, _)| id == wanted) {
        return Ok(hit.clone());
    }
    let named: Vec<&(String, String)> = listed.iter().filter(|(_, n)| n == wanted).collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Step::Reject(format!(
            "AppConfig has no {what} named {wanted:?} (by name or id)"
        ))),
        many => Err(Step::Reject(format!(
            "{} AppConfig {what}s are named {wanted:?} ({}); name it by id",
            many.len(),
            many.iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Follows `next_token` through every page of a listing.
macro_rules! all_pages {
    ($request:expr) => {{
        let mut out: Listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = $request
                .set_next_token(token.take())
                .max_results(50)
                .send()
                .await
                .map_err(|e| step_of(&e))?;
            out.extend(page.items().iter().filter_map(|i| {
                Some((
                    i.id()?.to_string(),
                    i.name().unwrap_or_default().to_string(),
                ))
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        out
    }};
}

pub(super) async fn resolve(client: &Client, t: &AppConfigTarget) -> Result<Ids, Step> {
    let apps = all_pages!(client.list_applications());
    let (application_id, _) = pick(&apps, &t.application, "application")?;
    let envs = all_pages!(client.list_environments().application_id(&application_id));
    let (environment_id, environment_name) = pick(&envs, &t.environment, "environment")?;
    let profiles = all_pages!(
        client
            .list_configuration_profiles()
            .application_id(&application_id)
    );
    let (profile_id, profile_name) = pick(&profiles, &t.profile, "configuration profile")?;
    let profile = client
        .get_configuration_profile()
        .application_id(&application_id)
        .configuration_profile_id(&profile_id)
        .send()
        .await
        .map_err(|e| step_of(&e))?;
    if profile.r#type() != Some("AWS.AppConfig.FeatureFlags") {
        return Err(Step::Reject(format!(
            "configuration profile {profile_name} is of type {}, not AWS.AppConfig.FeatureFlags: rollgate writes feature flags only",
            profile.r#type().unwrap_or("AWS.Freeform")
        )));
    }
    if profile.location_uri() != Some("hosted") {
        return Err(Step::Reject(format!(
            "configuration profile {profile_name} is stored at {}, not in AppConfig's hosted store: rollgate creates hosted versions only",
            profile.location_uri().unwrap_or("an unknown location")
        )));
    }
    let strategies = all_pages!(client.list_deployment_strategies());
    let (strategy_id, _) = pick(&strategies, &t.strategy, "deployment strategy")?;
    let (rollback_strategy_id, _) = pick(&strategies, &t.rollback_strategy, "deployment strategy")?;
    Ok(Ids {
        application_id,
        environment_id,
        environment_name,
        profile_id,
        profile_name,
        strategy_id,
        rollback_strategy_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed() -> Listed {
        vec![
            ("abc1234".into(), "prod".into()),
            ("def5678".into(), "staging".into()),
            ("ghi9012".into(), "staging".into()),
        ]
    }

    #[test]
    fn ids_win_and_names_must_be_unique() {
        assert_eq!(pick(&listed(), "prod", "environment").unwrap().0, "abc1234");
        assert_eq!(
            pick(&listed(), "def5678", "environment").unwrap().1,
            "staging"
        );
        assert!(
            matches!(pick(&listed(), "staging", "environment"), Err(Step::Reject(m)) if m.contains("name it by id"))
        );
        assert!(
            matches!(pick(&listed(), "dev", "environment"), Err(Step::Reject(m)) if m.contains("no environment named"))
        );
    }
}
