//! What each CLI command does, given already-parsed arguments: plan checks
//! run locally; everything about rollouts and the audit log goes to a
//! running server through the typed client.

pub mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use crate::client::{Client, ClientError, Step, to_json};
use crate::domain::RolloutId;
use crate::plan;
use crate::plan::RollbackTarget;
use crate::web::views::{AuditQuery, CommandRequest, RolloutQuery, StartRequest};

/// Where and how to talk to a server.
#[derive(Debug, Clone)]
pub struct Remote {
    pub server: String,
    pub json: bool,
    /// The name recorded as the actor while the server has sign-in off
    /// (default: `$USER (cli)`).
    pub actor: Option<String>,
    /// An API token (`--token`, `ROLLGATE_TOKEN`): the server records the
    /// token's name as the actor.
    pub token: Option<String>,
    /// A CA certificate (PEM) to trust besides the system's.
    pub ca_cert: Option<PathBuf>,
}

impl Remote {
    fn client(&self) -> Result<Client, ClientError> {
        let client = match &self.ca_cert {
            Some(path) => Client::with_ca(&self.server, path)?,
            None => Client::new(&self.server),
        };
        Ok(client.with_token(self.token.clone()))
    }

    /// The actor to claim: with a token, none unless one was given (the
    /// server knows who the token is, and refuses any other name).
    fn actor(&self) -> Option<String> {
        if self.token.is_some() {
            return self.actor.clone();
        }
        Some(self.actor.clone().unwrap_or_else(|| {
            let user = std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into());
            format!("{user} (cli)")
        }))
    }
}

/// `rollgate plan validate FILE…`: every problem as `file:line:col: message`.
pub fn validate_plans(files: &[PathBuf], json_output: bool) -> ExitCode {
    let mut failed = false;
    let mut results = Vec::new();
    for file in files {
        match plan::validate_file(file) {
            Ok(p) => {
                if !json_output {
                    let flags_in = match &p.target.appconfig {
                        Some(a) => format!(
                            ", flags in AppConfig profile {} of {}/{}",
                            a.profile, a.application, a.environment
                        ),
                        None => String::new(),
                    };
                    println!(
                        "{}: ok ({} phases, function {}{flags_in})",
                        file.display(),
                        p.phases.len(),
                        p.target.function
                    );
                }
                results.push(json!({ "file": file, "valid": true, "errors": [] }));
            }
            Err(errors) => {
                failed = true;
                if !json_output {
                    errors.iter().for_each(|e| eprintln!("{e}"));
                }
                results.push(json!({ "file": file, "valid": false, "errors": errors }));
            }
        }
    }
    if json_output {
        println!("{}", serde_json::Value::Array(results));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_rollout(remote: &Remote, answer: crate::client::Answer<crate::web::views::RolloutView>) {
    if remote.json {
        println!("{}", to_json(&answer.body));
        return;
    }
    print!("{}", render::rollout(&answer.body));
    if answer.status == 202 {
        eprintln!("warning: the flag write is not confirmed yet; rollgate keeps retrying it");
    }
}

/// `rollgate rollout start`.
pub async fn start(
    remote: &Remote,
    plan: String,
    reason: Option<String>,
    force: bool,
) -> Result<ExitCode, ClientError> {
    let req = StartRequest {
        plan,
        reason,
        actor: remote.actor(),
        force,
    };
    let answer = remote.client()?.start(&req).await?;
    if remote.json {
        println!("{}", to_json(&answer.body));
        return Ok(ExitCode::SUCCESS);
    }
    let preflight = &answer.body.preflight;
    for c in preflight.failures() {
        eprintln!(
            "warning: started past a failing preflight check: {}",
            c.line()
        );
    }
    for c in preflight.warnings() {
        eprintln!("warning: preflight: {}", c.line());
    }
    print_rollout(
        remote,
        crate::client::Answer {
            status: answer.status,
            body: answer.body.rollout,
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// `rollgate plan preflight NAME`: exit 1 when a check fails.
pub async fn preflight(remote: &Remote, name: &str) -> Result<ExitCode, ClientError> {
    let report = remote.client()?.preflight(name).await?.body;
    if remote.json {
        println!("{}", to_json(&report));
    } else {
        print!("{}", render::preflight(&report));
    }
    Ok(if report.status == crate::preflight::Status::Fail {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `rollgate rollout status [ID]`.
pub async fn status(remote: &Remote, id: Option<RolloutId>) -> Result<ExitCode, ClientError> {
    let client = remote.client()?;
    match id {
        Some(id) => print_rollout(remote, client.rollout(id).await?),
        None => {
            let list = client.rollouts(&RolloutQuery::default()).await?;
            if remote.json {
                println!("{}", to_json(&list));
            } else {
                if list.rollouts.is_empty() {
                    println!("no rollouts yet");
                }
                for r in &list.rollouts {
                    println!("{}", render::rollout_row(r));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a step command sends.
pub struct StepArgs {
    pub id: RolloutId,
    pub reason: Option<String>,
    pub expected_version: Option<i64>,
    pub force: bool,
    pub to: Option<RollbackTarget>,
}

/// `rollgate rollout advance|pause|resume|rollback|abandon ID`.
pub async fn step(remote: &Remote, step: Step, args: StepArgs) -> Result<ExitCode, ClientError> {
    let req = CommandRequest {
        reason: args.reason,
        expected_version: args.expected_version,
        actor: remote.actor(),
        to: args.to,
        force: args.force,
    };
    print_rollout(remote, remote.client()?.command(args.id, step, &req).await?);
    Ok(ExitCode::SUCCESS)
}

/// `rollgate audit list`: follows cursors until `limit` entries.
pub async fn audit_list(
    remote: &Remote,
    filter: AuditQuery,
    limit: usize,
) -> Result<ExitCode, ClientError> {
    let client = remote.client()?;
    let mut query = AuditQuery {
        limit: Some(limit.clamp(1, 1000) as i64),
        ..filter
    };
    let mut shown = 0;
    let mut all = Vec::new();
    loop {
        let page = client.audit_page(&query).await?;
        for e in page.entries {
            if shown >= limit {
                break;
            }
            shown += 1;
            if remote.json {
                all.push(e);
            } else {
                println!("{}", render::audit_entry(&e));
            }
        }
        match page.next_cursor {
            Some(next) if shown < limit => query.cursor = Some(next),
            _ => break,
        }
    }
    if remote.json {
        println!("{}", to_json(&all));
    }
    Ok(ExitCode::SUCCESS)
}

/// `rollgate audit verify`: exit 2 when the chain is broken.
pub async fn audit_verify(remote: &Remote) -> Result<ExitCode, ClientError> {
    let report = remote.client()?.verify().await?;
    if remote.json {
        println!("{}", to_json(&report));
    } else if report.ok {
        println!("audit log intact: {} entries verified", report.entries);
    } else {
        println!("AUDIT LOG TAMPERED: {} entries checked", report.entries);
        for p in &report.problems {
            println!("  entry {}: {}", p.seq, p.problem);
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `rollgate audit export`: streamed to stdout.
pub async fn audit_export(remote: &Remote, query: AuditQuery) -> Result<ExitCode, ClientError> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    remote.client()?.export(&query, &mut out).await?;
    Ok(ExitCode::SUCCESS)
}

/// `rollgate sandbox bad FLAG` / `good`: the simulator's bad flags.
pub async fn sandbox_bad_flags(url: &str, bad_flags: Vec<String>) -> anyhow::Result<ExitCode> {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sandbox/traffic", url.trim_end_matches('/')))
        .json(&json!({ "bad_flags": bad_flags }))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the sandbox at {url}: {e}"))?;
    if !resp.status().is_success() {
        anyhow::bail!(
            "the sandbox refused: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    let settings: serde_json::Value = resp.json().await?;
    println!("bad flags now: {}", settings["bad_flags"]);
    Ok(ExitCode::SUCCESS)
}

/// `rollgate user add NAME --role ROLE`: checks the name, role and
/// password before anything is written, hashes the password (argon2id)
/// and stores the user with an audit entry naming who ran the command.
pub async fn user_add(database: &str, name: &str, role: &str) -> anyhow::Result<()> {
    use crate::domain::user;
    user::check_name(name).map_err(anyhow::Error::msg)?;
    let role = user::Role::parse(role).map_err(anyhow::Error::msg)?;
    let password = read_new_password()?;
    // Checked before the database is touched: bad input changes nothing.
    user::check_password(&password).map_err(anyhow::Error::msg)?;
    let principal = local_operator()?;
    let store = crate::store::Store::connect(database).await?;
    let added = crate::service::add_user(&store, &principal, name, role, password).await;
    store.close().await;
    added?;
    println!("user {name} added with role {}", role.as_str());
    Ok(())
}

/// The new password: asked twice without echo on a terminal, else one
/// line of stdin (for scripts: `printf '%s\n' "$PW" | rollgate user add …`).
fn read_new_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        anyhow::ensure!(first == again, "the passwords differ; nothing was changed");
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Who runs a command on the database itself: `cli:$USER`.
fn local_operator() -> anyhow::Result<crate::domain::Principal> {
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    Ok(crate::domain::Principal::operator(Some(&format!(
        "cli:{who}"
    )))?)
}

/// `rollgate token create NAME --role ROLE [--expires-in D]`, on the
/// server's database: how the first admin token is made (later ones can
/// come from the API or the dashboard). Prints the secret once.
pub async fn token_create(
    database: &str,
    name: &str,
    role: &str,
    expires_in: Option<&str>,
    json_output: bool,
) -> anyhow::Result<()> {
    use crate::domain::user::Role;
    crate::domain::auth::check_token_name(name).map_err(anyhow::Error::msg)?;
    let role = Role::parse(role).map_err(anyhow::Error::msg)?;
    let now = chrono::Utc::now();
    let expires_at = expires_in
        .map(|d| -> anyhow::Result<_> {
            let d = plan::parse_any_duration(d).map_err(anyhow::Error::msg)?;
            Ok(now + chrono::TimeDelta::from_std(d)?)
        })
        .transpose()?;
    let who = local_operator()?;
    let store = crate::store::Store::connect(database).await?;
    let made = crate::service::create_token(&store, &who, name, role, expires_at, now).await;
    store.close().await;
    let (row, secret) = made?;
    if json_output {
        println!("{}", json!({ "token": row, "secret": secret }));
    } else {
        eprintln!(
            "token {name} made with role {} (shown once; store it now):",
            role.as_str()
        );
        println!("{secret}");
    }
    Ok(())
}

/// `rollgate token list`, on the server's database (never the secrets).
pub async fn token_list(database: &str, json_output: bool) -> anyhow::Result<()> {
    let store = crate::store::Store::connect(database).await?;
    let tokens = store.tokens().await;
    store.close().await;
    let tokens = tokens?;
    if json_output {
        println!("{}", json!({ "tokens": tokens }));
        return Ok(());
    }
    for t in tokens {
        let state = if t.revoked_at.is_some() {
            "revoked".to_string()
        } else if t.expires_at.is_some_and(|e| e <= chrono::Utc::now()) {
            "expired".to_string()
        } else {
            "active".to_string()
        };
        println!(
            "{}\t{}\t{state}\texpires {}\tlast used {}\tby {}",
            t.name,
            t.role.as_str(),
            t.expires_at.map_or("never".into(), |e| e.to_rfc3339()),
            t.last_used_at.map_or("never".into(), |e| e.to_rfc3339()),
            t.created_by
        );
    }
    Ok(())
}

/// `rollgate token revoke NAME`, on the server's database: refused at once
/// by every server on it.
pub async fn token_revoke(database: &str, name: &str) -> anyhow::Result<()> {
    let who = local_operator()?;
    let store = crate::store::Store::connect(database).await?;
    let entry = crate::audit::NewAuditEntry::new(
        &who,
        crate::domain::Action::TokenRevoked,
        crate::domain::Outcome::Applied,
    )
    .detail(json!({ "token": name }));
    let done = store.revoke_token(name, chrono::Utc::now(), entry).await;
    store.close().await;
    anyhow::ensure!(done?, "no active token named {name:?}; nothing was changed");
    println!("token {name} revoked");
    Ok(())
}
