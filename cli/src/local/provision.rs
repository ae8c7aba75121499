//! Creates the template's tables and queues in an emulator (or any account), under a name
//! prefix, and resolves each function's environment to the names it created.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use eventfold::aws::Config;

use crate::identity::cognito::{ClientSettings, Cognito, UserPool};
use crate::local::gateway::LOCAL_ACCOUNT;
use crate::local::template::{FunctionSpec, KmsKeySpec, Reference, TableSpec, Template};
use crate::sign::SignedClient;

/// Resource creation failed.
#[derive(Debug, thiserror::Error)]
#[error("provisioning: {0}")]
pub struct ProvisionError(pub String);

fn fail(context: &str, error: impl std::fmt::Display) -> ProvisionError {
    ProvisionError(format!("{context}: {error}"))
}

/// The SDK clients of the local environment, built once.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Cognito user pools (signed JSON calls).
    pub cognito: Cognito,
    /// Signed JSON calls to the other APIs the CLI uses without an SDK (KMS).
    pub signed: SignedClient,
}

impl Clients {
    /// Clients sharing one SDK configuration.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            streams: aws_sdk_dynamodbstreams::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            cognito: Cognito::new(config),
            signed: SignedClient::new(config),
        }
    }
}

/// A KMS key as created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsKey {
    pub id: String,
    pub arn: String,
}

/// A queue as created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRef {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// The physical names of everything created, by logical id.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    pub prefix: String,
    pub tables: BTreeMap<String, String>,
    pub stream_arns: BTreeMap<String, String>,
    pub queues: BTreeMap<String, QueueRef>,
    /// Cognito user pools and app clients (client ids), by logical id.
    pub user_pools: BTreeMap<String, UserPool>,
    pub user_pool_clients: BTreeMap<String, String>,
    /// KMS keys, by logical id.
    pub kms_keys: BTreeMap<String, KmsKey>,
    /// S3 bucket names, by logical id.
    pub buckets: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
}

impl Resources {
    /// None yet: the names of `template`'s resources under `prefix` are to be filled in.
    fn named(template: &Template, prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            parameters: template.parameters.clone(),
            ..Self::default()
        }
    }

    /// A table's physical name.
    pub fn table(&self, logical_id: &str) -> &str {
        self.tables.get(logical_id).map_or("", String::as_str)
    }

    /// A queue as created.
    pub fn queue(&self, logical_id: &str) -> Option<&QueueRef> {
        self.queues.get(logical_id)
    }

    /// A queue's URL.
    pub fn queue_url(&self, logical_id: &str) -> &str {
        self.queues.get(logical_id).map_or("", |q| q.url.as_str())
    }

    /// What `!Ref`/`!GetAtt` resolve to here.
    pub fn resolve(&self, reference: &Reference) -> Result<String, ProvisionError> {
        let missing = || ProvisionError(format!("cannot resolve {reference:?}"));
        match reference {
            Reference::Literal(value) => Ok(value.clone()),
            Reference::Ref(id) => self
                .tables
                .get(id)
                .cloned()
                .or_else(|| self.queues.get(id).map(|q| q.url.clone()))
                .or_else(|| self.user_pools.get(id).map(|p| p.id.clone()))
                .or_else(|| self.user_pool_clients.get(id).cloned())
                .or_else(|| self.kms_keys.get(id).map(|k| k.id.clone()))
                .or_else(|| self.buckets.get(id).cloned())
                .or_else(|| self.parameters.get(id).cloned())
                .or_else(|| self.pseudo_parameter(id))
                .ok_or_else(missing),
            Reference::GetAtt(id, attribute) => match attribute.as_str() {
                "StreamArn" => self.stream_arns.get(id).cloned().ok_or_else(missing),
                "Arn" => self
                    .queues
                    .get(id)
                    .map(|q| q.arn.clone())
                    .or_else(|| self.kms_keys.get(id).map(|k| k.arn.clone()))
                    .or_else(|| self.user_pools.get(id).map(|p| p.arn(LOCAL_ACCOUNT)))
                    .ok_or_else(missing),
                "QueueName" => self
                    .queues
                    .get(id)
                    .map(|q| q.name.clone())
                    .ok_or_else(missing),
                "KeyId" => self
                    .kms_keys
                    .get(id)
                    .map(|k| k.id.clone())
                    .ok_or_else(missing),
                "ProviderName" => self
                    .user_pools
                    .get(id)
                    .map(UserPool::provider_name)
                    .ok_or_else(missing),
                _ => Err(missing()),
            },
            Reference::Sub(text) => {
                let mut resolved = text.clone();
                for name in crate::local::template::sub_names(text) {
                    let reference = match name.split_once('.') {
                        Some((id, attribute)) => {
                            Reference::GetAtt(id.to_owned(), attribute.to_owned())
                        }
                        None => Reference::Ref(name.to_owned()),
                    };
                    resolved =
                        resolved.replace(&format!("${{{name}}}"), &self.resolve(&reference)?);
                }
                Ok(resolved)
            }
        }
    }

    /// `AWS::Region` and its kind, as the local environment has them.
    fn pseudo_parameter(&self, name: &str) -> Option<String> {
        match name {
            "AWS::Region" => Some("us-east-1".into()),
            "AWS::AccountId" => Some(LOCAL_ACCOUNT.into()),
            "AWS::Partition" => Some("aws".into()),
            "AWS::StackName" => Some(self.prefix.clone()),
            "AWS::URLSuffix" => Some("amazonaws.com".into()),
            _ => None,
        }
    }

    /// A function's environment variables, resolved.
    pub fn environment(
        &self,
        function: &FunctionSpec,
    ) -> Result<BTreeMap<String, String>, ProvisionError> {
        function
            .environment
            .iter()
            .map(|(name, reference)| Ok((name.clone(), self.resolve(reference)?)))
            .collect()
    }

    /// A function's typed configuration, read from its resolved environment exactly as the
    /// Lambda reads its real one.
    pub fn config(&self, function: &FunctionSpec) -> Result<Config, ProvisionError> {
        let environment = self.environment(function)?;
        Config::from_vars(environment).map_err(|e| fail(&function.logical_id, e))
    }
}

/// The physical name of a resource under a prefix.
pub fn physical_name(prefix: &str, logical_id: &str, fifo: bool) -> String {
    if fifo {
        format!("{prefix}-{logical_id}.fifo")
    } else {
        format!("{prefix}-{logical_id}")
    }
}

/// Creates (or finds) every table and queue of the template under `prefix`.
pub async fn provision(
    template: &Template,
    clients: &Clients,
    prefix: &str,
) -> Result<Resources, ProvisionError> {
    let mut resources = Resources::named(template, prefix);
    let tables = futures::future::try_join_all(template.tables.iter().map(|table| {
        create_table(
            &clients.dynamodb,
            table,
            physical_name(prefix, &table.logical_id, false),
        )
    }))
    .await?;
    for (table, (name, stream_arn)) in template.tables.iter().zip(tables) {
        resources.tables.insert(table.logical_id.clone(), name);
        if let Some(arn) = stream_arn {
            resources.stream_arns.insert(table.logical_id.clone(), arn);
        }
    }
    // Dead-letter queues first: the queues that redrive to them need their ARNs.
    let mut pending: Vec<_> = template.queues.iter().collect();
    while !pending.is_empty() {
        let (ready, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|queue| {
            queue
                .redrive
                .as_ref()
                .is_none_or(|(dlq, _)| resources.queues.contains_key(dlq))
        });
        if ready.is_empty() {
            return Err(ProvisionError("queues redrive in a cycle".into()));
        }
        for queue in ready {
            let name = physical_name(prefix, &queue.logical_id, queue.fifo);
            let mut request = clients.sqs.create_queue().queue_name(&name);
            if queue.fifo {
                request = request
                    .attributes(QueueAttributeName::FifoQueue, "true")
                    .attributes(
                        QueueAttributeName::ContentBasedDeduplication,
                        queue.content_based_deduplication.to_string(),
                    );
            }
            if let Some(timeout) = queue.visibility_timeout {
                request =
                    request.attributes(QueueAttributeName::VisibilityTimeout, timeout.to_string());
            }
            if let Some((dlq, max_receives)) = &queue.redrive {
                let policy = serde_json::json!({
                    "deadLetterTargetArn": resources.queues[dlq].arn,
                    "maxReceiveCount": max_receives,
                });
                request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
            }
            let url = request
                .send()
                .await
                .map_err(|e| fail(&name, aws_sdk_sqs::error::DisplayErrorContext(e)))?
                .queue_url
                .ok_or_else(|| ProvisionError(format!("{name}: no queue URL")))?;
            let arn = queue_arn(clients, &name, &url)
                .await?
                .ok_or_else(|| ProvisionError(format!("{name}: no queue ARN")))?;
            resources
                .queues
                .insert(queue.logical_id.clone(), QueueRef { name, url, arn });
        }
        pending = waiting;
    }
    provision_identity(template, clients, &mut resources).await?;
    for bucket in &template.buckets {
        let name = bucket_name(prefix, &bucket.logical_id);
        let retention = match &bucket.retention {
            Some((mode, days)) => Some((mode.clone(), resources.resolve(days)?)),
            None => None,
        };
        create_bucket(&clients.signed, &name, bucket.object_lock, retention).await?;
        resources.buckets.insert(bucket.logical_id.clone(), name);
    }
    for key in &template.kms_keys {
        let created = create_key(
            &clients.signed,
            key,
            &physical_name(prefix, &key.logical_id, false),
        )
        .await?;
        resources.kms_keys.insert(key.logical_id.clone(), created);
    }
    Ok(resources)
}

/// Creates the template's user pools (named `<prefix>-<LogicalId>`), their groups and their
/// app clients.
async fn provision_identity(
    template: &Template,
    clients: &Clients,
    resources: &mut Resources,
) -> Result<(), ProvisionError> {
    for spec in &template.user_pools {
        let name = physical_name(&resources.prefix, &spec.logical_id, false);
        let pool = clients
            .cognito
            .ensure_pool(&name)
            .await
            .map_err(|e| fail(&name, e))?;
        for group in &spec.groups {
            clients
                .cognito
                .ensure_group(&pool, group)
                .await
                .map_err(|e| fail(&name, e))?;
        }
        resources.user_pools.insert(spec.logical_id.clone(), pool);
    }
    for spec in &template.user_pool_clients {
        let pool = resources
            .user_pools
            .get(&spec.pool)
            .ok_or_else(|| ProvisionError(format!("{}: no pool {}", spec.logical_id, spec.pool)))?;
        let name = physical_name(&resources.prefix, &spec.logical_id, false);
        let settings = ClientSettings {
            auth_flows: spec.auth_flows.clone(),
            access_token_seconds: None,
        };
        let id = clients
            .cognito
            .ensure_client(pool, &name, &settings)
            .await
            .map_err(|e| fail(&name, e))?;
        resources
            .user_pool_clients
            .insert(spec.logical_id.clone(), id);
    }
    Ok(())
}

/// A bucket's name under a prefix: S3 wants lower case.
pub fn bucket_name(prefix: &str, logical_id: &str) -> String {
    format!("{prefix}-{logical_id}").to_lowercase()
}

/// Creates a bucket (one that exists already is fine), with Object Lock and its default
/// retention (mode, days) when the template asks for them.
async fn create_bucket(
    s3: &SignedClient,
    name: &str,
    object_lock: bool,
    retention: Option<(String, String)>,
) -> Result<(), ProvisionError> {
    let url = format!("{}/{name}", s3.endpoint("s3"));
    let lock = if object_lock { "true" } else { "false" };
    let created = s3
        .send(
            "s3",
            "PUT",
            &url,
            &[("x-amz-bucket-object-lock-enabled", lock)],
            Vec::new(),
        )
        .await
        .map_err(|e| fail(name, e))?;
    let status = created.status();
    let said = created.text().await.unwrap_or_default();
    if !status.is_success() && !said.contains("BucketAlreadyOwnedByYou") {
        return Err(fail(
            name,
            format!("CreateBucket answered {status}: {said}"),
        ));
    }
    if let Some((mode, days)) = retention {
        let body = format!(
            "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
             <Mode>{mode}</Mode><Days>{days}</Days></DefaultRetention></Rule>\
             </ObjectLockConfiguration>"
        );
        let configured = s3
            .send(
                "s3",
                "PUT",
                &format!("{url}?object-lock"),
                &[],
                body.into_bytes(),
            )
            .await
            .map_err(|e| fail(name, e))?;
        if !configured.status().is_success() {
            let status = configured.status();
            let said = configured.text().await.unwrap_or_default();
            return Err(fail(
                name,
                format!("PutObjectLockConfiguration answered {status}: {said}"),
            ));
        }
    }
    Ok(())
}

/// Creates a KMS key as the template declares it, findable again by the alias `alias/<name>`.
async fn create_key(
    kms: &SignedClient,
    spec: &KmsKeySpec,
    name: &str,
) -> Result<KmsKey, ProvisionError> {
    if let Some(found) = find_key(kms, name).await? {
        return Ok(found);
    }
    let created = kms
        .call_json(
            "kms",
            "TrentService.CreateKey",
            &serde_json::json!({
                "KeySpec": spec.key_spec,
                "KeyUsage": spec.key_usage,
                "Description": name,
            }),
        )
        .await
        .map_err(|e| fail(name, e))?;
    let metadata = &created["KeyMetadata"];
    let key = KmsKey {
        id: metadata["KeyId"].as_str().unwrap_or_default().to_owned(),
        arn: metadata["Arn"].as_str().unwrap_or_default().to_owned(),
    };
    kms.call_json(
        "kms",
        "TrentService.CreateAlias",
        &serde_json::json!({ "AliasName": format!("alias/{name}"), "TargetKeyId": key.id }),
    )
    .await
    .map_err(|e| fail(name, e))?;
    Ok(key)
}

/// The key behind `alias/<name>`, if there is one.
async fn find_key(kms: &SignedClient, name: &str) -> Result<Option<KmsKey>, ProvisionError> {
    match kms
        .call_json(
            "kms",
            "TrentService.DescribeKey",
            &serde_json::json!({ "KeyId": format!("alias/{name}") }),
        )
        .await
    {
        Ok(described) => Ok(Some(KmsKey {
            id: described["KeyMetadata"]["KeyId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            arn: described["KeyMetadata"]["Arn"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })),
        Err(error) if error.is("NotFoundException") => Ok(None),
        Err(error) => Err(fail(name, error)),
    }
}

/// The ARN of the queue at `url`, if the emulator says it.
async fn queue_arn(
    clients: &Clients,
    name: &str,
    url: &str,
) -> Result<Option<String>, ProvisionError> {
    Ok(clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| fail(name, aws_sdk_sqs::error::DisplayErrorContext(e)))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn)))
}

/// Finds the template's tables and queues under `prefix` without creating any: what an
/// operator command works on. A queue that does not exist is not part of the environment; a
/// table is named whether or not it exists (the command that uses it says so).
pub async fn discover(
    template: &Template,
    clients: &Clients,
    prefix: &str,
) -> Result<Resources, ProvisionError> {
    let mut resources = Resources::named(template, prefix);
    for table in &template.tables {
        let name = physical_name(prefix, &table.logical_id, false);
        if table.stream_view_type.is_some()
            && let Ok(described) = clients
                .dynamodb
                .describe_table()
                .table_name(&name)
                .send()
                .await
            && let Some(arn) = described.table.and_then(|t| t.latest_stream_arn)
        {
            resources.stream_arns.insert(table.logical_id.clone(), arn);
        }
        resources.tables.insert(table.logical_id.clone(), name);
    }
    for queue in &template.queues {
        let name = physical_name(prefix, &queue.logical_id, queue.fifo);
        let Ok(found) = clients.sqs.get_queue_url().queue_name(&name).send().await else {
            continue;
        };
        let Some(url) = found.queue_url else { continue };
        let arn = queue_arn(clients, &name, &url).await?.unwrap_or_default();
        resources
            .queues
            .insert(queue.logical_id.clone(), QueueRef { name, url, arn });
    }
    for spec in &template.user_pools {
        let name = physical_name(prefix, &spec.logical_id, false);
        if let Ok(Some(pool)) = clients.cognito.find_pool(&name).await {
            for client in template
                .user_pool_clients
                .iter()
                .filter(|c| c.pool == spec.logical_id)
            {
                let client_name = physical_name(prefix, &client.logical_id, false);
                if let Ok(Some(id)) = clients.cognito.find_client(&pool, &client_name).await {
                    resources
                        .user_pool_clients
                        .insert(client.logical_id.clone(), id);
                }
            }
            resources.user_pools.insert(spec.logical_id.clone(), pool);
        }
    }
    for key in &template.kms_keys {
        let name = physical_name(prefix, &key.logical_id, false);
        if let Ok(Some(found)) = find_key(&clients.signed, &name).await {
            resources.kms_keys.insert(key.logical_id.clone(), found);
        }
    }
    for bucket in &template.buckets {
        resources.buckets.insert(
            bucket.logical_id.clone(),
            bucket_name(prefix, &bucket.logical_id),
        );
    }
    Ok(resources)
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &TableSpec,
    name: String,
) -> Result<(String, Option<String>), ProvisionError> {
    let mut request = client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest);
    for (attribute, kind) in &table.attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(|e| fail(&name, e))?,
        );
    }
    let keys = std::iter::once((&table.hash_key, KeyType::Hash))
        .chain(table.range_key.iter().map(|k| (k, KeyType::Range)));
    for (key, kind) in keys {
        request = request.key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(kind)
                .build()
                .map_err(|e| fail(&name, e))?,
        );
    }
    if let Some(view) = &table.stream_view_type {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(|e| fail(&name, e))?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(aws_sdk_dynamodb::operation::create_table::CreateTableError::is_resource_in_use_exception) => {}
        Err(e) => return Err(fail(&name, aws_sdk_dynamodb::error::DisplayErrorContext(e))),
    }
    let mut stream_arn = None;
    for _ in 0..120 {
        let description = client
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .map_err(|e| fail(&name, aws_sdk_dynamodb::error::DisplayErrorContext(e)))?
            .table
            .ok_or_else(|| ProvisionError(format!("{name}: no description")))?;
        stream_arn = description.latest_stream_arn.clone();
        if description.table_status == Some(TableStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(attribute) = &table.ttl_attribute {
        let result = client
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()
                    .map_err(|e| fail(&name, e))?,
            )
            .send()
            .await;
        // Already enabled on a reused table is fine.
        if let Err(e) = result
            && e.as_service_error()
                .is_none_or(|s| s.meta().code() != Some("ValidationException"))
        {
            return Err(fail(&name, aws_sdk_dynamodb::error::DisplayErrorContext(e)));
        }
    }
    Ok((name, stream_arn))
}
