//! What may enter the log: every command the leader proposes is checked here first,
//! forwarded ones included, by the same validators the client API applies to requests
//! (each command is turned back into its request and checked as one), so no path —
//! not a hand-made `ForwardWrite` on the Raft port either — can write what the API
//! would refuse.

use waymark_proto::{
    acl, check_config_key, check_config_value, check_health_update, check_instance_key,
    check_lease_id, check_lease_ttl, intention, pb, Registration, ValidationError,
};

use super::convert;
use crate::model::{
    AclCommand, AuthMethodConfig, CaCommand, Command, ConfigCommand, IntentionCommand, NewToken,
};

/// Longest reason an `EndLease` or `DeleteToken` may carry, in bytes.
const MAX_REASON_LEN: usize = 128;

/// Checks a command about to be proposed on the leader.
pub fn check_command(cmd: &Command) -> Result<(), ValidationError> {
    match cmd {
        Command::Register(new) => {
            let again =
                convert::new_instance(Registration::try_from(convert::register_request(new))?);
            if again != *new {
                // Every field passed, but the command says something no request can
                // (a default spelt out, say): refuse rather than store a second form.
                return Err(ValidationError::new(
                    "register",
                    "not a registration the API would make",
                ));
            }
            Ok(())
        }
        Command::Deregister { service, id } => check_instance_key(service, id),
        Command::UpdateHealth {
            service,
            id,
            health,
            output,
        } => check_health_update(&pb::UpdateHealthRequest {
            service: service.clone(),
            id: id.clone(),
            status: convert::health(*health) as i32,
            output: output.clone(),
        })
        .map(|_| ()),
        Command::CreateLease { ttl_ms } => check_lease_ttl(*ttl_ms),
        Command::EndLease { lease_id, reason } => {
            check_lease_id(*lease_id)?;
            check_reason(reason)
        }
        Command::ReapCritical { service, id, .. } => check_instance_key(service, id),
        Command::Config(ConfigCommand::Put { key, value, .. }) => {
            check_config_key("key", key)?;
            check_config_value(value)
        }
        Command::Config(ConfigCommand::Delete { key, .. }) => check_config_key("key", key),
        // Batches are made by the leader's proposer, after this check, from commands
        // that each passed it.
        Command::Batch(_) => Err(ValidationError::new(
            "command",
            "a batch is formed by the leader, never proposed",
        )),
        Command::Acl(cmd) => check_acl_command(cmd),
        Command::Ca(CaCommand::Initialize(root) | CaCommand::Rotate { root, .. }) => {
            crate::identity::ca::check_new_root(root)
        }
        Command::Ca(CaCommand::Retire { id }) => check_root_id(id),
        Command::Intention(IntentionCommand::Put {
            source,
            destination,
            action,
            description,
        }) => intention::check_put_intention(&pb::PutIntentionRequest {
            source: source.clone(),
            destination: destination.clone(),
            action: convert::intention_action(*action).to_wire() as i32,
            description: description.clone(),
        })
        .map(|_| ()),
        Command::Intention(IntentionCommand::Delete {
            source,
            destination,
        }) => {
            intention::check_intention_service("source", source)?;
            intention::check_intention_service("destination", destination)
        }
    }
}

/// A root id: 16 lowercase hex characters.
pub fn check_root_id(id: &str) -> Result<(), ValidationError> {
    if id.len() != 16
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ValidationError::new(
            "id",
            format!("must be a root id, 16 lowercase hex characters (got {id:?})"),
        ));
    }
    Ok(())
}

/// Checks a command a follower forwarded: a client's write, never one of the leader's
/// own decisions.
pub fn check_forwarded(cmd: &Command) -> Result<(), ValidationError> {
    if let Command::ReapCritical { .. } | Command::Ca(CaCommand::Initialize(_)) = cmd {
        return Err(ValidationError::new(
            "command",
            format!(
                "{} is decided by the leader and never forwarded",
                cmd.name()
            ),
        ));
    }
    check_command(cmd)
}

fn check_reason(reason: &str) -> Result<(), ValidationError> {
    if reason.is_empty() || reason.len() > MAX_REASON_LEN {
        return Err(ValidationError::new(
            "reason",
            format!("must be 1-{MAX_REASON_LEN} bytes"),
        ));
    }
    Ok(())
}

fn check_acl_command(cmd: &AclCommand) -> Result<(), ValidationError> {
    match cmd {
        AclCommand::Bootstrap(new) | AclCommand::CreateToken(new) => check_new_token(new),
        AclCommand::DeleteToken {
            accessor_id,
            reason,
        } => {
            acl::check_accessor_id(accessor_id)?;
            check_reason(reason)
        }
        AclCommand::PutPolicy {
            name,
            description,
            rules,
        } => acl::check_put_policy(&pb::PutPolicyRequest {
            name: name.clone(),
            description: description.clone(),
            rules: rules.iter().map(convert::acl_rule_to_wire).collect(),
        }),
        AclCommand::DeletePolicy { name } => acl::check_policy_name("name", name),
        AclCommand::PutAuthMethod(spec) => {
            acl::check_put_auth_method(&convert::put_auth_method_request(spec))?;
            let AuthMethodConfig::Jwt(jwt) = &spec.config;
            // The API spells the defaults out; a 0 would be a second form.
            for (field, value) in [
                ("method.max_token_ttl_ms", jwt.max_token_ttl_ms),
                ("method.clock_skew_ms", jwt.clock_skew_ms),
            ] {
                if value == 0 {
                    return Err(ValidationError::new(
                        field,
                        "defaults are resolved before proposing: must not be 0",
                    ));
                }
            }
            crate::acl::jwks::check_method_keys(jwt)
        }
        AclCommand::DeleteAuthMethod { name } => acl::check_auth_method_name("name", name),
        AclCommand::CreateBindingRule(new) => {
            acl::check_binding_rule_id(&new.id)?;
            acl::check_create_binding_rule(&pb::CreateBindingRuleRequest {
                method: new.method.clone(),
                selector: new.selector.clone(),
                policies: new.policies.clone(),
                description: new.description.clone(),
            })
        }
        AclCommand::DeleteBindingRule { id } => acl::check_binding_rule_id(id),
    }
}

fn check_new_token(new: &NewToken) -> Result<(), ValidationError> {
    acl::check_accessor_id(&new.accessor_id)?;
    let is_sha256_hex = new.secret_hash.len() == 64
        && new
            .secret_hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_sha256_hex {
        return Err(ValidationError::new(
            "secret_hash",
            "must be a SHA-256 in lowercase hex",
        ));
    }
    acl::check_description(&new.description)?;
    acl::check_token_policies(&new.policies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Health, NewInstance};

    #[test]
    fn what_the_api_accepts_passes_and_what_it_refuses_is_refused() {
        let good = NewInstance::example("web", "web-1", 80);
        assert_eq!(check_command(&Command::Register(good.clone())), Ok(()));
        // The forged write of the issue: a name, id, address, port and weight the API
        // refuses.
        let mut evil = good.clone();
        evil.service = "Evil.Service".into();
        assert_eq!(
            check_command(&Command::Register(evil)).unwrap_err().field,
            "service"
        );
        for (field, change) in [
            (
                "id",
                Box::new(|n: &mut NewInstance| n.id = "../../x".into())
                    as Box<dyn Fn(&mut NewInstance)>,
            ),
            (
                "address",
                Box::new(|n: &mut NewInstance| n.address = "not an address!!".into()),
            ),
            ("port", Box::new(|n: &mut NewInstance| n.port = 0)),
            (
                "weights.passing",
                Box::new(|n: &mut NewInstance| n.weight_passing = 0),
            ),
        ] {
            let mut bad = good.clone();
            change(&mut bad);
            assert_eq!(
                check_command(&Command::Register(bad)).unwrap_err().field,
                field
            );
        }
        // Spelling out the default status is a second form of the same request.
        let mut spelt = good;
        spelt.initial_health = Some(Health::Passing);
        assert!(check_command(&Command::Register(spelt)).is_err());
    }

    #[test]
    fn auth_methods_and_binding_rules_are_checked_like_their_requests() {
        use crate::model::{AuthMethodSpec, JwtMethod, NewBindingRule};
        let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        let spec = |jwks: &str, ttl: u64| {
            Command::Acl(AclCommand::PutAuthMethod(AuthMethodSpec {
                name: "ci".into(),
                description: String::new(),
                config: AuthMethodConfig::Jwt(JwtMethod {
                    issuer: "https://ci.example".into(),
                    audiences: vec!["waymark".into()],
                    jwks: jwks.into(),
                    public_keys: vec![],
                    jwks_url: String::new(),
                    jwks_ca_cert: String::new(),
                    max_token_ttl_ms: ttl,
                    clock_skew_ms: 10_000,
                }),
            }))
        };
        assert_eq!(check_command(&spec(jwks, 60_000)), Ok(()));
        let field = |cmd: Command| check_command(&cmd).unwrap_err().field;
        assert_eq!(field(spec(jwks, 0)), "method.max_token_ttl_ms");
        assert_eq!(
            field(spec(r#"{"keys":[{"kty":"oct","k":"AA"}]}"#, 60_000)),
            "method.jwks"
        );
        let rule = |id: &str, selector: &str| {
            Command::Acl(AclCommand::CreateBindingRule(NewBindingRule {
                id: id.into(),
                description: String::new(),
                method: "ci".into(),
                selector: selector.into(),
                policies: vec!["web".into()],
            }))
        };
        assert_eq!(check_command(&rule(&"a".repeat(32), "service=web")), Ok(()));
        assert_eq!(field(rule(&"a".repeat(32), "service=")), "selector");
        assert_eq!(field(rule("../x", "service=web")), "id");
    }

    #[test]
    fn leader_only_commands_are_not_taken_from_followers() {
        let reap = Command::ReapCritical {
            service: "web".into(),
            id: "a".into(),
            if_modify_index: 3,
        };
        assert!(check_command(&reap).is_ok());
        assert!(check_forwarded(&reap).is_err());
        assert!(check_command(&Command::Batch(Vec::new().into())).is_err());
        let health = Command::UpdateHealth {
            service: "web".into(),
            id: "a".into(),
            health: Health::Passing,
            output: "x".repeat(5000),
        };
        assert_eq!(check_forwarded(&health).unwrap_err().field, "output");
    }
}
