//! Who is calling, and whether they may: the principal an authorizer vouched for, and the
//! typed refusals an access rule gives.
//!
//! The runtimes take the principal from API Gateway's authorizer context (a validated JWT's
//! issuer, subject and scopes, or a SigV4 caller's ARN) and carry it in the command context;
//! an application's rules see it together with the loaded state, before `decide`. A caller who
//! may not see an object is told it does not exist ([`Denied::Hidden`], 404); one who may see
//! it but not do this is told so ([`Denied::Forbidden`], 403). Nothing is written either way.
//!
//! ```
//! use eventfold::identity::{Denied, Principal};
//!
//! let ada = Principal::jwt("https://issuer.example", "ada", ["bank/read", "bank/write"]);
//! let owner = "ada";
//! assert!(ada.is(owner));
//! assert!(ada.require_scope("bank/write").is_ok());
//! assert_eq!(ada.require_scope("bank/operator"), Err(Denied::Forbidden("this needs the scope bank/operator".into())));
//! ```

use std::collections::BTreeSet;
use std::fmt;

use sha2::{Digest, Sha256};

/// A caller, as the authorizer vouched for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The bearer of a JWT the authorizer validated (issuer, audience, expiry, signature).
    Jwt {
        /// `iss`.
        issuer: String,
        /// `sub`: the user (or client) the token speaks for.
        subject: String,
        /// `scope` (space-separated) and `scp`, as granted.
        scopes: BTreeSet<String>,
    },
    /// An AWS principal that signed the request (SigV4) and that IAM allowed to invoke the
    /// route. IAM decides what it may call; inside a route it holds every scope (it is a
    /// service or an operator with credentials to the account, not an end user).
    Iam {
        /// The caller's ARN (or its caller id).
        arn: String,
    },
}

impl Principal {
    /// A JWT principal.
    pub fn jwt<S: Into<String>>(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::Jwt {
            issuer: issuer.into(),
            subject: subject.into(),
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }

    /// An IAM principal.
    pub fn iam(arn: impl Into<String>) -> Self {
        Self::Iam { arn: arn.into() }
    }

    /// Who the principal is: the JWT's subject or the IAM ARN; recorded as the actor of the
    /// events it causes and compared with an owner.
    pub fn subject(&self) -> &str {
        match self {
            Self::Jwt { subject, .. } => subject,
            Self::Iam { arn } => arn,
        }
    }

    /// Whether the principal holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        match self {
            Self::Jwt { scopes, .. } => scopes.contains(scope),
            Self::Iam { .. } => true,
        }
    }

    /// `Ok` if the principal holds `scope`, else 403.
    pub fn require_scope(&self, scope: &str) -> Result<(), Denied> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(Denied::Forbidden(format!("this needs the scope {scope}")))
        }
    }

    /// Whether the principal is `owner` (an owner recorded from an earlier principal's
    /// [`subject`](Self::subject)).
    pub fn is(&self, owner: &str) -> bool {
        self.subject() == owner
    }

    /// A short, stable tag for the principal (its issuer and subject hashed), which namespaces
    /// what a caller names, such as idempotency keys: two principals' keys never meet.
    pub fn tag(&self) -> String {
        let mut hasher = Sha256::new();
        match self {
            Self::Jwt {
                issuer, subject, ..
            } => {
                hasher.update(b"jwt\n");
                hasher.update(issuer.as_bytes());
                hasher.update(b"\n");
                hasher.update(subject.as_bytes());
            }
            Self::Iam { arn } => {
                hasher.update(b"iam\n");
                hasher.update(arn.as_bytes());
            }
        }
        hex::encode(&hasher.finalize()[..8])
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.subject())
    }
}

/// Why a caller may not.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No principal: the request carried no credentials the authorizer accepted (401).
    #[error("this needs an authenticated caller")]
    Unauthenticated,
    /// The caller may not see the object, so for them it does not exist (404).
    #[error("not found")]
    Hidden,
    /// The caller may see the object but may not do this (403).
    #[error("{0}")]
    Forbidden(String),
}

impl Denied {
    /// A 403 saying why.
    pub fn forbidden(why: impl Into<String>) -> Self {
        Self::Forbidden(why.into())
    }
}

/// `Ok(principal)` if there is one, else 401.
pub fn authenticated(principal: Option<&Principal>) -> Result<&Principal, Denied> {
    principal.ok_or(Denied::Unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_tell_principals_apart_and_iam_holds_every_scope() {
        let a = Principal::jwt("https://a", "u-1", ["r"]);
        let other_issuer = Principal::jwt("https://b", "u-1", ["r"]);
        let other_subject = Principal::jwt("https://a", "u-2", ["r"]);
        assert_ne!(a.tag(), other_issuer.tag());
        assert_ne!(a.tag(), other_subject.tag());
        assert_eq!(a.tag(), Principal::jwt("https://a", "u-1", ["w"]).tag());
        assert_eq!(a.tag().len(), 16);
        assert!(!a.has_scope("w"));
        assert!(Principal::iam("arn:aws:iam::1:user/ops").has_scope("anything"));
        assert_eq!(authenticated(None), Err(Denied::Unauthenticated));
    }
}
