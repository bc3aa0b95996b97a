//! ACL records in the catalog: bootstrap (once), token create and delete, policy put
//! and delete, auth method put and delete (with its binding rules), binding rule
//! create and delete, and the lookups authentication and login need (a token by its
//! secret's hash, the tokens past their expiry, a method's binding rules).

use super::{Catalog, Effects};
use crate::model::{
    AclAuthMethod, AclBindingRule, AclBootstrap, AclCommand, AclDeleted, AclPolicy, AclRule,
    AclToken, AuthMethodDeleted, AuthMethodSpec, AuthMethodWritten, BindingRuleOutcome,
    CommandResult, NewBindingRule, NewToken, PolicyWritten, RecordChange, TokenOutcome,
    BOOTSTRAP_KEY, GLOBAL_MANAGEMENT,
};

impl Catalog {
    pub(super) fn apply_acl(&mut self, index: u64, cmd: &AclCommand) -> Effects {
        match cmd {
            AclCommand::Bootstrap(new) => {
                if let Some(done) = self.tables.acl_bootstrap.get(&BOOTSTRAP_KEY.to_string()) {
                    return Effects::result(CommandResult::AclToken(
                        TokenOutcome::AlreadyBootstrapped(done.index),
                    ));
                }
                let mut effects = self.create_token(index, new);
                if let CommandResult::AclToken(TokenOutcome::Created(_)) = effects.result {
                    let marker = AclBootstrap {
                        key: BOOTSTRAP_KEY.into(),
                        index,
                        accessor_id: new.accessor_id.clone(),
                    };
                    self.tables.acl_bootstrap.put(marker.clone());
                    effects.changes.push(RecordChange::Put(marker).into());
                }
                effects
            }
            AclCommand::CreateToken(new) => self.create_token(index, new),
            AclCommand::DeleteToken { accessor_id, .. } => {
                let removed = self.tables.acl_tokens.remove(accessor_id);
                if let Some(t) = &removed {
                    self.tokens_by_secret.remove(&t.secret_hash);
                    if let Some(at) = t.expires_at_unix_ms {
                        self.token_expiry.remove(&(at, t.accessor_id.clone()));
                    }
                }
                Effects {
                    result: CommandResult::AclDelete(AclDeleted {
                        removed: removed.is_some(),
                    }),
                    changes: removed
                        .map(|_| RecordChange::<AclToken>::Delete(accessor_id.clone()).into())
                        .into_iter()
                        .collect(),
                }
            }
            AclCommand::PutPolicy {
                name,
                description,
                rules,
            } => self.put_policy(index, name, description, rules),
            AclCommand::DeletePolicy { name } => {
                let removed = self.tables.acl_policies.remove(name).is_some();
                Effects {
                    result: CommandResult::AclDelete(AclDeleted { removed }),
                    changes: removed
                        .then(|| RecordChange::<AclPolicy>::Delete(name.clone()).into())
                        .into_iter()
                        .collect(),
                }
            }
            AclCommand::PutAuthMethod(spec) => self.put_auth_method(index, spec),
            AclCommand::DeleteAuthMethod { name } => self.delete_auth_method(name),
            AclCommand::CreateBindingRule(new) => self.create_binding_rule(index, new),
            AclCommand::DeleteBindingRule { id } => {
                let removed = self.tables.acl_binding_rules.remove(id).is_some();
                Effects {
                    result: CommandResult::AclDelete(AclDeleted { removed }),
                    changes: removed
                        .then(|| RecordChange::<AclBindingRule>::Delete(id.clone()).into())
                        .into_iter()
                        .collect(),
                }
            }
        }
    }

    fn put_auth_method(&mut self, index: u64, spec: &AuthMethodSpec) -> Effects {
        let create_index = self
            .tables
            .acl_auth_methods
            .get(&spec.name)
            .map_or(index, |m| m.create_index);
        let method = AclAuthMethod {
            name: spec.name.clone(),
            description: spec.description.clone(),
            config: spec.config.clone(),
            create_index,
            modify_index: index,
        };
        self.tables.acl_auth_methods.put(method.clone());
        Effects {
            result: CommandResult::AclAuthMethod(AuthMethodWritten(method.clone())),
            changes: vec![RecordChange::Put(method).into()],
        }
    }

    /// Removes the method and every binding rule that names it, in one index.
    fn delete_auth_method(&mut self, name: &str) -> Effects {
        let removed = self
            .tables
            .acl_auth_methods
            .remove(&name.to_string())
            .is_some();
        let mut changes = Vec::new();
        if removed {
            changes.push(RecordChange::<AclAuthMethod>::Delete(name.to_string()).into());
        }
        let rules: Vec<String> = self.binding_rules_of(name).map(|r| r.id.clone()).collect();
        for id in &rules {
            self.tables.acl_binding_rules.remove(id);
            changes.push(RecordChange::<AclBindingRule>::Delete(id.clone()).into());
        }
        Effects {
            result: CommandResult::AclAuthMethodDelete(AuthMethodDeleted {
                removed,
                binding_rules_removed: rules.len() as u32,
            }),
            changes,
        }
    }

    fn create_binding_rule(&mut self, index: u64, new: &NewBindingRule) -> Effects {
        if self.tables.acl_binding_rules.get(&new.id).is_some() {
            return Effects::result(CommandResult::AclBindingRule(BindingRuleOutcome::Duplicate));
        }
        // Checked here, not before proposing: the method may be deleted meanwhile.
        if self.tables.acl_auth_methods.get(&new.method).is_none() {
            return Effects::result(CommandResult::AclBindingRule(
                BindingRuleOutcome::UnknownMethod(new.method.clone()),
            ));
        }
        let rule = AclBindingRule {
            id: new.id.clone(),
            description: new.description.clone(),
            method: new.method.clone(),
            selector: new.selector.clone(),
            policies: new.policies.clone(),
            create_index: index,
        };
        self.tables.acl_binding_rules.put(rule.clone());
        Effects {
            result: CommandResult::AclBindingRule(BindingRuleOutcome::Created(rule.clone())),
            changes: vec![RecordChange::Put(rule).into()],
        }
    }

    fn create_token(&mut self, index: u64, new: &NewToken) -> Effects {
        let taken = self.tables.acl_tokens.get(&new.accessor_id).is_some()
            || self.tokens_by_secret.contains_key(&new.secret_hash);
        if taken {
            return Effects::result(CommandResult::AclToken(TokenOutcome::Duplicate));
        }
        // Checked here, not before proposing: a policy may be deleted meanwhile.
        if let Some(missing) = new
            .policies
            .iter()
            .find(|p| *p != GLOBAL_MANAGEMENT && self.tables.acl_policies.get(*p).is_none())
        {
            return Effects::result(CommandResult::AclToken(TokenOutcome::UnknownPolicy(
                missing.clone(),
            )));
        }
        let token = AclToken {
            accessor_id: new.accessor_id.clone(),
            secret_hash: new.secret_hash.clone(),
            description: new.description.clone(),
            policies: new.policies.clone(),
            expires_at_unix_ms: new.expires_at_unix_ms,
            origin: new.origin.clone(),
            create_index: index,
        };
        self.index_token(&token);
        self.tables.acl_tokens.put(token.clone());
        Effects {
            result: CommandResult::AclToken(TokenOutcome::Created(token.clone())),
            changes: vec![RecordChange::Put(token).into()],
        }
    }

    /// Adds a token to the derived indexes (also used when rebuilding from tables).
    pub(super) fn index_token(&mut self, token: &AclToken) {
        self.tokens_by_secret
            .insert(token.secret_hash.clone(), token.accessor_id.clone());
        if let Some(at) = token.expires_at_unix_ms {
            self.token_expiry.insert((at, token.accessor_id.clone()));
        }
    }

    fn put_policy(
        &mut self,
        index: u64,
        name: &str,
        description: &str,
        rules: &[AclRule],
    ) -> Effects {
        let create_index = self
            .tables
            .acl_policies
            .get(&name.to_string())
            .map_or(index, |p| p.create_index);
        let policy = AclPolicy {
            name: name.to_string(),
            description: description.to_string(),
            rules: rules.to_vec(),
            create_index,
            modify_index: index,
        };
        self.tables.acl_policies.put(policy.clone());
        Effects {
            result: CommandResult::AclPolicy(PolicyWritten(policy.clone())),
            changes: vec![RecordChange::Put(policy).into()],
        }
    }

    /// The token whose secret hashes to `secret_hash`.
    pub fn token_by_secret_hash(&self, secret_hash: &str) -> Option<&AclToken> {
        let accessor = self.tokens_by_secret.get(secret_hash)?;
        self.tables.acl_tokens.get(accessor)
    }

    pub fn token(&self, accessor_id: &str) -> Option<&AclToken> {
        self.tables.acl_tokens.get(&accessor_id.to_string())
    }

    pub fn tokens(&self) -> impl Iterator<Item = &AclToken> {
        self.tables.acl_tokens.iter()
    }

    pub fn policy(&self, name: &str) -> Option<&AclPolicy> {
        self.tables.acl_policies.get(&name.to_string())
    }

    pub fn policies(&self) -> impl Iterator<Item = &AclPolicy> {
        self.tables.acl_policies.iter()
    }

    pub fn auth_method(&self, name: &str) -> Option<&AclAuthMethod> {
        self.tables.acl_auth_methods.get(&name.to_string())
    }

    pub fn auth_methods(&self) -> impl Iterator<Item = &AclAuthMethod> {
        self.tables.acl_auth_methods.iter()
    }

    pub fn binding_rules(&self) -> impl Iterator<Item = &AclBindingRule> {
        self.tables.acl_binding_rules.iter()
    }

    /// The binding rules of one auth method, in id order.
    pub fn binding_rules_of<'a>(
        &'a self,
        method: &'a str,
    ) -> impl Iterator<Item = &'a AclBindingRule> + 'a {
        self.binding_rules().filter(move |r| r.method == method)
    }

    /// When bootstrap was applied, if it was.
    pub fn acl_bootstrapped_at(&self) -> Option<u64> {
        self.tables
            .acl_bootstrap
            .get(&BOOTSTRAP_KEY.to_string())
            .map(|b| b.index)
    }

    /// Accessor ids of the tokens whose expiry is at or before `now_unix_ms`, oldest
    /// first (the leader deletes them through the log).
    pub fn expired_tokens(&self, now_unix_ms: u64) -> impl Iterator<Item = &str> {
        self.token_expiry
            .iter()
            .take_while(move |(at, _)| *at <= now_unix_ms)
            .map(|(_, accessor)| accessor.as_str())
    }
}
