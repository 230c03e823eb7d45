"""Jobs (DynamoDB) and artifacts (S3), and the stream that deletes an expired job's files."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from constructs import Construct

from clipline.adapters.aws.dynamo_job_repository import LISTING_KEY_ATTRIBUTE, OWNER_INDEX
from clipline.asr.transcribe import INPUT_PREFIX as TRANSCRIBE_INPUT_PREFIX
from clipline.asr.transcribe import OUTPUT_PREFIX as TRANSCRIBE_OUTPUT_PREFIX
from clipline.domain.cleanup import JOBS_PREFIX, TRANSCRIPTS_PREFIX
from clipline.domain.uploads import UPLOADS_PREFIX

from . import acknowledge, dead_letter_queue, private_bucket
from .config import StageConfig

PARTITION_KEY = "pk"
TTL_ATTRIBUTE = "expiresAt"
# Transcribe's staging objects are deleted as soon as its job ends; anything older is a crash's leftover.
TRANSCRIBE_STAGING_EXPIRY = Duration.days(1)
ACCESS_LOG_EXPIRY = Duration.days(90)
# Past the default upload retention (24 hours) with a day to spare for TTL's delay.
UPLOAD_EXPIRY = Duration.days(2)
# A stream record that keeps failing is retried this often (halving the batch each time) before it is parked.
STREAM_RETRY_ATTEMPTS = 5
STREAM_BATCH_SIZE = 25


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.DESTROY if config.removal_policy == "destroy" else RemovalPolicy.RETAIN
        self.removal_policy = removal

        self.jobs_table = dynamodb.Table(
            self,
            "Jobs",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TTL_ATTRIBUTE,
            # Old images carry the removed record's keys, which the retention handler needs.
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal,
        )
        # An owner's jobs, newest first: GET /api/jobs reads it. Only job items carry both keys, so the
        # index holds nothing else; it projects everything, since a listing shows whole jobs.
        self.jobs_table.add_global_secondary_index(
            index_name=OWNER_INDEX,
            partition_key=dynamodb.Attribute(name="owner", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=LISTING_KEY_ATTRIBUTE, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )

        self.access_logs_bucket = private_bucket(
            self,
            "AccessLogs",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireAccessLogs", expiration=ACCESS_LOG_EXPIRY)],
            removal_policy=removal,
        )
        # Logging the log bucket into itself would log its own writes without end.
        acknowledge(
            self.access_logs_bucket,
            "AwsSolutions-S1",
            "This is the server access log bucket; it does not log to itself.",
        )

        expiry = Duration.days(config.artifact_expiry_days)
        self.artifacts_bucket = private_bucket(
            self,
            "Artifacts",
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="artifacts/",
            # TTL plus the stream handler delete files on time; these rules catch whatever they miss.
            # A transcript reused after its expiry is simply transcribed again (the cache treats it as a miss).
            lifecycle_rules=[
                s3.LifecycleRule(id="ExpireJobArtifacts", prefix=JOBS_PREFIX, expiration=expiry),
                s3.LifecycleRule(id="ExpireTranscripts", prefix=TRANSCRIPTS_PREFIX, expiration=expiry),
                s3.LifecycleRule(
                    id="ExpireTranscribeInput", prefix=TRANSCRIBE_INPUT_PREFIX, expiration=TRANSCRIBE_STAGING_EXPIRY
                ),
                s3.LifecycleRule(
                    id="ExpireTranscribeOutput", prefix=TRANSCRIBE_OUTPUT_PREFIX, expiration=TRANSCRIBE_STAGING_EXPIRY
                ),
                s3.LifecycleRule(id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=Duration.days(1)),
                # An upload's record expires within a day (TTL and the stream remove its object); this catches
                # what they miss, such as an object PUT after its record was gone.
                s3.LifecycleRule(id="ExpireSourceUploads", prefix=UPLOADS_PREFIX, expiration=UPLOAD_EXPIRY),
            ],
            removal_policy=removal,
        )

        # Stream records that could not be handled after every retry, kept for a person to replay.
        self.expiry_failures = dead_letter_queue(self, "ExpiryFailures")
        # Nothing consumes it automatically, so there is nothing to dead-letter from it.
        acknowledge(
            self.expiry_failures,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter destination of the jobs table's stream.",
        )

    def remove_expired_artifacts_with(self, handler: lambda_.IFunction) -> None:
        """Let ``handler`` delete the files of every record the table removes, with partial batch responses."""
        handler.add_event_source(
            event_sources.DynamoEventSource(
                self.jobs_table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=STREAM_BATCH_SIZE,
                report_batch_item_failures=True,
                bisect_batch_on_error=True,
                retry_attempts=STREAM_RETRY_ATTEMPTS,
                on_failure=event_sources.SqsDlq(self.expiry_failures),
                # Inserts and updates never free files; filtering them out saves the invocations.
                filters=[lambda_.FilterCriteria.filter({"eventName": lambda_.FilterRule.is_equal("REMOVE")})],
            )
        )
