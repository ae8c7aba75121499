//! Identity for any template with a JWT authorizer over a Cognito user pool: the local
//! gateway's authorizers (checking tokens as API Gateway does), and tokens for a user with
//! chosen scopes (`eventfold token`), which the local runner and a deployed stack both accept.
//!
//! Scopes are granted by group membership: a user in the pool's group `bank/write` holds the
//! scope `bank/write` (the runtimes read the `cognito:groups` claim beside `scope`). A token
//! is minted by making the user a member of exactly the groups asked for and signing it in
//! with a fresh random password through the template's app client.

pub mod cognito;
pub mod jwt;

use std::collections::BTreeMap;
use std::sync::Arc;

use cognito::{Cognito, UserPool};
use jwt::JwtAuthorizer;

use crate::local::provision::{ProvisionError, Resources};
use crate::local::template::Template;

/// The JWT authorizers of `template`, by logical id, for its resources as created: issuers
/// and audiences resolved, keys read from the emulator at `endpoint` where the issuer is a
/// Cognito pool on it.
pub fn authorizers(
    template: &Template,
    resources: &Resources,
    endpoint: Option<&str>,
) -> Result<BTreeMap<String, Arc<JwtAuthorizer>>, ProvisionError> {
    template
        .authorizers
        .iter()
        .map(|spec| {
            let issuer = resources.resolve(&spec.issuer)?;
            let audiences = spec
                .audiences
                .iter()
                .map(|a| resources.resolve(a))
                .collect::<Result<Vec<_>, _>>()?;
            let keys = jwt::jwks_url(&issuer, endpoint);
            Ok((
                spec.logical_id.clone(),
                Arc::new(JwtAuthorizer::new(issuer, audiences, keys)),
            ))
        })
        .collect()
}

/// Where a service's tokens come from: its user pool, the app client users sign in through,
/// and the groups that grant scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenIssuer {
    /// The pool.
    pub pool: UserPool,
    /// The app client (the audience of the service's authorizer).
    pub client_id: String,
    /// The pool's groups as the template declares them: the scopes a token can carry.
    pub scopes: Vec<String>,
}

impl TokenIssuer {
    /// The issuer of `template`'s first JWT authorizer, its pool and client named by
    /// `physical` (logical id to pool id or client id).
    pub fn of(
        template: &Template,
        physical: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let authorizer = template
            .authorizers
            .first()
            .ok_or("the template has no JWT authorizer")?;
        let pool_id = authorizer
            .issuer
            .target()
            .filter(|id| template.user_pool(id).is_some())
            .ok_or("the JWT authorizer's issuer is not a user pool of the template")?;
        let client = authorizer
            .audiences
            .iter()
            .find_map(|a| {
                a.target().filter(|id| {
                    template
                        .user_pool_clients
                        .iter()
                        .any(|c| c.logical_id == *id)
                })
            })
            .ok_or("the JWT authorizer's audience is not an app client of the template")?;
        let pool = physical(pool_id).ok_or_else(|| format!("{pool_id} is not created"))?;
        let client_id = physical(client).ok_or_else(|| format!("{client} is not created"))?;
        Ok(Self {
            pool: UserPool::new(pool),
            client_id,
            scopes: template
                .user_pool(pool_id)
                .map(|p| p.groups.clone())
                .unwrap_or_default(),
        })
    }

    /// The issuer of `template`'s JWT authorizer over its resources as created locally.
    pub fn for_resources(template: &Template, resources: &Resources) -> Result<Self, String> {
        Self::of(template, |logical| {
            resources
                .user_pools
                .get(logical)
                .map(|pool| pool.id.clone())
                .or_else(|| resources.user_pool_clients.get(logical).cloned())
        })
    }

    /// An access token for `user` (created if new; an email address is also its email)
    /// holding exactly `scopes`.
    pub async fn token(
        &self,
        cognito: &Cognito,
        user: &str,
        scopes: &[String],
    ) -> Result<String, String> {
        if let Some(unknown) = scopes.iter().find(|s| !self.scopes.contains(s)) {
            return Err(format!(
                "no group of the pool grants {unknown}; the scopes are: {}",
                self.scopes.join(" ")
            ));
        }
        cognito
            .ensure_user(&self.pool, user)
            .await
            .map_err(|e| e.to_string())?;
        cognito
            .set_groups(&self.pool, user, &self.scopes, scopes)
            .await
            .map_err(|e| e.to_string())?;
        // A password is set for this sign-in and never kept. Two tokens minted for one user at
        // once may each reset it before the other signs in: the loser tries again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let password = fresh_password();
            cognito
                .set_password(&self.pool, user, &password)
                .await
                .map_err(|e| e.to_string())?;
            match cognito
                .access_token(&self.pool, &self.client_id, user, &password)
                .await
            {
                Ok(token) => return Ok(token),
                Err(error) if error.is("NotAuthorizedException") && attempt < 5 => {}
                Err(error) => return Err(error.to_string()),
            }
        }
    }
}

/// A password meeting Cognito's default policy, from the operating system's randomness.
fn fresh_password() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    format!("Ef-9{a}{b}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_passwords_meet_the_default_policy_and_differ() {
        let (a, b) = (fresh_password(), fresh_password());
        assert_ne!(a, b);
        for password in [a, b] {
            assert!(password.len() >= 8);
            assert!(password.chars().any(|c| c.is_ascii_uppercase()));
            assert!(password.chars().any(|c| c.is_ascii_lowercase()));
            assert!(password.chars().any(|c| c.is_ascii_digit()));
            assert!(password.chars().any(|c| !c.is_ascii_alphanumeric()));
        }
    }
}
