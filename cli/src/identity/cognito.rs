//! The Cognito user pool calls the CLI makes: creating a template's pool, groups and app
//! client locally, finding them again, and signing a user in for a token. Plain signed JSON
//! calls (AWS's JSON protocol), so the CLI links no Cognito SDK.

use serde_json::{Value, json};

use crate::sign::{AwsError, SignedClient};

/// A user pool: its id and the region it lives in, which make its issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPool {
    /// `us-east-1_AbC…`.
    pub id: String,
    /// The region (the prefix of the id).
    pub region: String,
}

impl UserPool {
    /// A pool by id; its region is the id's prefix.
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        let region = id.split('_').next().unwrap_or("us-east-1").to_owned();
        Self { id, region }
    }

    /// `cognito-idp.<region>.amazonaws.com/<id>`: what CloudFormation's `ProviderName` gives.
    pub fn provider_name(&self) -> String {
        format!("cognito-idp.{}.amazonaws.com/{}", self.region, self.id)
    }

    /// The `iss` of the pool's tokens.
    pub fn issuer(&self) -> String {
        format!("https://{}", self.provider_name())
    }

    /// The pool's ARN in `account`.
    pub fn arn(&self, account: &str) -> String {
        format!(
            "arn:aws:cognito-idp:{}:{account}:userpool/{}",
            self.region, self.id
        )
    }
}

/// An app client to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientSettings {
    /// `ExplicitAuthFlows`.
    pub auth_flows: Vec<String>,
    /// `AccessTokenValidity` in seconds, if not the pool's default (an hour).
    pub access_token_seconds: Option<u32>,
}

/// Cognito's user pool API.
#[derive(Clone, Debug)]
pub struct Cognito {
    client: SignedClient,
}

impl Cognito {
    /// Calls signed with `sdk`'s credentials, to its endpoint.
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            client: SignedClient::new(sdk),
        }
    }

    async fn call(&self, operation: &str, input: &Value) -> Result<Value, AwsError> {
        self.client
            .call_json(
                "cognito-idp",
                &format!("AWSCognitoIdentityProviderService.{operation}"),
                input,
            )
            .await
    }

    /// The pool named `name`, if there is one.
    pub async fn find_pool(&self, name: &str) -> Result<Option<UserPool>, AwsError> {
        let mut next: Option<String> = None;
        loop {
            let mut input = json!({ "MaxResults": 60 });
            if let Some(token) = &next {
                input["NextToken"] = json!(token);
            }
            let page = self.call("ListUserPools", &input).await?;
            let found = page["UserPools"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|pool| pool["Name"] == name)
                .and_then(|pool| pool["Id"].as_str());
            if let Some(id) = found {
                return Ok(Some(UserPool::new(id)));
            }
            match page["NextToken"].as_str() {
                Some(token) => next = Some(token.to_owned()),
                None => return Ok(None),
            }
        }
    }

    /// The pool named `name`, created if there is none.
    pub async fn ensure_pool(&self, name: &str) -> Result<UserPool, AwsError> {
        if let Some(pool) = self.find_pool(name).await? {
            return Ok(pool);
        }
        let created = self
            .call(
                "CreateUserPool",
                &json!({ "PoolName": name, "UsernameConfiguration": { "CaseSensitive": false } }),
            )
            .await?;
        Ok(UserPool::new(
            created["UserPool"]["Id"].as_str().unwrap_or_default(),
        ))
    }

    /// Creates group `name` in `pool` (a group that exists already is fine).
    pub async fn ensure_group(&self, pool: &UserPool, name: &str) -> Result<(), AwsError> {
        match self
            .call(
                "CreateGroup",
                &json!({ "UserPoolId": pool.id, "GroupName": name }),
            )
            .await
        {
            Err(error) if !error.is("GroupExistsException") => Err(error),
            _ => Ok(()),
        }
    }

    /// The id of `pool`'s app client named `name`, if there is one.
    pub async fn find_client(
        &self,
        pool: &UserPool,
        name: &str,
    ) -> Result<Option<String>, AwsError> {
        let mut next: Option<String> = None;
        loop {
            let mut input = json!({ "UserPoolId": pool.id, "MaxResults": 60 });
            if let Some(token) = &next {
                input["NextToken"] = json!(token);
            }
            let page = self.call("ListUserPoolClients", &input).await?;
            let found = page["UserPoolClients"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|client| client["ClientName"] == name)
                .and_then(|client| client["ClientId"].as_str());
            if let Some(id) = found {
                return Ok(Some(id.to_owned()));
            }
            match page["NextToken"].as_str() {
                Some(token) => next = Some(token.to_owned()),
                None => return Ok(None),
            }
        }
    }

    /// The id of `pool`'s app client named `name`, created (public: no secret) if missing.
    pub async fn ensure_client(
        &self,
        pool: &UserPool,
        name: &str,
        settings: &ClientSettings,
    ) -> Result<String, AwsError> {
        if let Some(id) = self.find_client(pool, name).await? {
            return Ok(id);
        }
        let mut input = json!({
            "UserPoolId": pool.id,
            "ClientName": name,
            "GenerateSecret": false,
            "ExplicitAuthFlows": settings.auth_flows,
        });
        if let Some(seconds) = settings.access_token_seconds {
            input["AccessTokenValidity"] = json!(seconds);
            input["TokenValidityUnits"] = json!({ "AccessToken": "seconds" });
        }
        let created = self.call("CreateUserPoolClient", &input).await?;
        Ok(created["UserPoolClient"]["ClientId"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Sets how long app client `client_id`'s access tokens live, keeping its other settings
    /// (an update resets what it does not name); returns the validity it had, in seconds.
    pub async fn set_access_token_seconds(
        &self,
        pool: &UserPool,
        client_id: &str,
        seconds: u32,
    ) -> Result<u32, AwsError> {
        let described = self
            .call(
                "DescribeUserPoolClient",
                &json!({ "UserPoolId": pool.id, "ClientId": client_id }),
            )
            .await?;
        let client = &described["UserPoolClient"];
        let unit_seconds = match client["TokenValidityUnits"]["AccessToken"].as_str() {
            Some("seconds") => 1,
            Some("minutes") => 60,
            Some("days") => 86_400,
            _ => 3_600,
        };
        let before = client["AccessTokenValidity"]
            .as_u64()
            .map_or(3_600, |v| v * unit_seconds);
        let mut update = json!({
            "UserPoolId": pool.id,
            "ClientId": client_id,
            "AccessTokenValidity": seconds,
            "TokenValidityUnits": { "AccessToken": "seconds" },
        });
        for kept in [
            "ClientName",
            "ExplicitAuthFlows",
            "PreventUserExistenceErrors",
            "RefreshTokenValidity",
            "IdTokenValidity",
        ] {
            if !client[kept].is_null() {
                update[kept] = client[kept].clone();
            }
        }
        self.call("UpdateUserPoolClient", &update).await?;
        Ok(u32::try_from(before).unwrap_or(u32::MAX))
    }

    /// Creates user `name` unless it exists (an email address is its verified email too).
    pub async fn ensure_user(&self, pool: &UserPool, name: &str) -> Result<(), AwsError> {
        let existing = self
            .call(
                "AdminGetUser",
                &json!({ "UserPoolId": pool.id, "Username": name }),
            )
            .await;
        match existing {
            Ok(_) => return Ok(()),
            Err(error) if !error.is("UserNotFoundException") => return Err(error),
            Err(_) => {}
        }
        let mut attributes = Vec::new();
        if name.contains('@') {
            attributes.push(json!({ "Name": "email", "Value": name }));
            attributes.push(json!({ "Name": "email_verified", "Value": "true" }));
        }
        match self
            .call(
                "AdminCreateUser",
                &json!({
                    "UserPoolId": pool.id,
                    "Username": name,
                    "MessageAction": "SUPPRESS",
                    "UserAttributes": attributes,
                }),
            )
            .await
        {
            Err(error) if !error.is("UsernameExistsException") => Err(error),
            _ => Ok(()),
        }
    }

    /// Makes `user` a member of exactly `wanted` among `managed` groups.
    pub async fn set_groups(
        &self,
        pool: &UserPool,
        user: &str,
        managed: &[String],
        wanted: &[String],
    ) -> Result<(), AwsError> {
        let listed = self
            .call(
                "AdminListGroupsForUser",
                &json!({ "UserPoolId": pool.id, "Username": user, "Limit": 60 }),
            )
            .await?;
        let current: Vec<String> = listed["Groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["GroupName"].as_str().map(str::to_owned))
            .collect();
        for group in managed {
            let (member, wants) = (current.contains(group), wanted.contains(group));
            let operation = match (member, wants) {
                (false, true) => "AdminAddUserToGroup",
                (true, false) => "AdminRemoveUserFromGroup",
                _ => continue,
            };
            self.call(
                operation,
                &json!({ "UserPoolId": pool.id, "Username": user, "GroupName": group }),
            )
            .await?;
        }
        Ok(())
    }

    /// Sets `user`'s password (permanent).
    pub async fn set_password(
        &self,
        pool: &UserPool,
        user: &str,
        password: &str,
    ) -> Result<(), AwsError> {
        self.call(
            "AdminSetUserPassword",
            &json!({
                "UserPoolId": pool.id,
                "Username": user,
                "Password": password,
                "Permanent": true,
            }),
        )
        .await
        .map(drop)
    }

    /// Signs `user` in through app client `client_id` with a password: its access token.
    pub async fn access_token(
        &self,
        pool: &UserPool,
        client_id: &str,
        user: &str,
        password: &str,
    ) -> Result<String, AwsError> {
        let answer = self
            .call(
                "AdminInitiateAuth",
                &json!({
                    "UserPoolId": pool.id,
                    "ClientId": client_id,
                    "AuthFlow": "ADMIN_USER_PASSWORD_AUTH",
                    "AuthParameters": { "USERNAME": user, "PASSWORD": password },
                }),
            )
            .await?;
        answer["AuthenticationResult"]["AccessToken"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| AwsError {
                operation: "AdminInitiateAuth".into(),
                code: None,
                message: format!(
                    "no access token: the pool asked for a challenge ({})",
                    answer["ChallengeName"]
                ),
            })
    }
}
