//! STS (awsQuery, `Version=2011-06-15`): GetCallerIdentity, answering who
//! the sandbox's caller is (`Sandbox::set_caller_arn`). As in AWS it needs
//! no permission: a denied `sts:GetCallerIdentity` still answers (the
//! policy simulator reports the denial).

use axum::http::StatusCode;
use axum::response::Response;
use ciborium::Value as Cbor;

use super::query::{self, Fault, members, text};
use super::{Shared, iam};

pub(super) const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

pub(super) const SCHEMA: query::Schema = query::Schema {
    xmlns: XMLNS,
    numbers: &["DurationSeconds"],
    timestamps: &[],
    booleans: &[],
    lists: &[],
    text_members: &[],
};

pub(super) fn dispatch(shared: &Shared, body: &[u8]) -> Response {
    let Some((op, _)) = query::parse(body, &SCHEMA) else {
        return query::answer(XMLNS, "", Err(missing_action()));
    };
    let reply = match op.as_str() {
        "GetCallerIdentity" => Ok(caller_identity(&shared.lock().caller_arn)),
        other => Err(Fault::sender(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
    };
    query::answer(XMLNS, &op, reply)
}

fn missing_action() -> Fault {
    Fault::sender(
        StatusCode::BAD_REQUEST,
        "MissingAction",
        "Missing Action parameter",
    )
}

/// `Arn`, `UserId` and `Account` of `arn`: for an assumed role the role's
/// id and the session name (`AROA…:rollgate`), for a user its id, for the
/// root the account.
fn caller_identity(arn: &str) -> Cbor {
    let account = arn.split(':').nth(4).unwrap_or(super::ACCOUNT);
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    let user_id = match resource.split('/').collect::<Vec<_>>().as_slice() {
        ["assumed-role", role, session] => format!("{}:{session}", iam::role_id(role)),
        ["root"] => account.to_string(),
        [.., name] => iam::unique_id("AIDA", name),
        [] => iam::unique_id("AIDA", arn),
    };
    members(vec![
        ("Arn", text(arn)),
        ("UserId", text(&user_id)),
        ("Account", text(account)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: &Cbor, name: &str) -> String {
        let Cbor::Map(fields) = v else { panic!() };
        fields
            .iter()
            .find(|(k, _)| *k == text(name))
            .and_then(|(_, v)| v.as_text())
            .unwrap()
            .to_string()
    }

    #[test]
    fn identities() {
        let me =
            caller_identity("arn:aws:sts::123456789012:assumed-role/rollgate-operator/rollgate");
        assert_eq!(field(&me, "Account"), "123456789012");
        let user_id = field(&me, "UserId");
        assert!(
            user_id.starts_with("AROA") && user_id.ends_with(":rollgate"),
            "{user_id}"
        );
        assert_eq!(
            field(&caller_identity("arn:aws:iam::210987654321:root"), "UserId"),
            "210987654321"
        );
        assert!(
            field(
                &caller_identity("arn:aws:iam::123456789012:user/ci"),
                "UserId"
            )
            .starts_with("AIDA")
        );
    }
}
