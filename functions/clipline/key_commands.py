"""``clipline keys create | list | revoke | webhook-secret``: API keys, and the secret that signs each key's webhooks.

Local keys live in the data dir. ``webhook-secret --aws`` reads a deployed stack
instead: the key from API Gateway, by name, and its secret from Secrets Manager.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any


SECRETS_PREFIX_VARIABLE = "CLIPLINE_WEBHOOK_SECRETS_PREFIX"


def add_to(commands: Any) -> None:
    """Add ``keys`` and its subcommands to the CLI's subparsers."""
    keys = commands.add_parser("keys", help="manage API keys and their webhook signing secrets")
    key_commands = keys.add_subparsers(dest="key_command", required=True)
    create = key_commands.add_parser("create", help="create a local key and print it once")
    create.add_argument("--name", required=True)
    plan = create.add_argument_group("usage plan", "each limit defaults to the service's (CLIPLINE_KEY_*)")
    plan.add_argument("--rate", type=_positive(float), help="steady requests per second")
    plan.add_argument("--burst", type=_positive(int), help="requests allowed at once (the token bucket's size)")
    plan.add_argument("--quota", type=_positive(int), help="requests per quota period")
    plan.add_argument("--period", choices=("day", "week", "month"), help="quota period, a calendar period in UTC")
    listing = key_commands.add_parser("list", help="list local keys (never the keys themselves)")
    revoke = key_commands.add_parser("revoke", help="revoke a local key at once")
    revoke.add_argument("key_id")
    secret = key_commands.add_parser(
        "webhook-secret", help="print the secret that signs a key's webhooks (made on first use)"
    )
    secret.add_argument("--name", required=True, help="the key's name")
    secret.add_argument("--rotate", action="store_true", help="replace the secret first; the old one stops at once")
    secret.add_argument(
        "--aws", action="store_true", help="a deployed stack's key (API Gateway) and secret (Secrets Manager)"
    )
    secret.add_argument(
        "--secrets-prefix", help="with --aws: the stack's WebhookSecretsPrefix output (or set CLIPLINE_WEBHOOK_SECRETS_PREFIX)"
    )
    for sub in (create, listing, revoke, secret):
        sub.add_argument("--data-dir", type=Path, default=None)
    keys.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .settings import Settings

    settings = Settings.for_data_dir(args.data_dir)
    if args.key_command == "webhook-secret":
        return _webhook_secret(args, settings)
    from .composition import SystemClock
    from .local.service import DataDir, default_usage_plan

    store = DataDir.of(settings).key_store(SystemClock())
    default_plan = default_usage_plan(settings)
    if args.key_command == "create":
        given = {"rate_per_second": args.rate, "burst": args.burst, "quota": args.quota, "quota_period": args.period}
        plan = replace(default_plan, **{name: value for name, value in given.items() if value is not None})
        key_id, key = store.create(args.name, plan)
        print(f"API key for {args.name} (id {key_id}, {plan.describe()}); it is shown only once:", file=sys.stderr)
        print(key)
    elif args.key_command == "list":
        for record in store.list():
            used = record.last_used_at.isoformat() if record.last_used_at else "never"
            state = "revoked" if record.revoked else "active"
            plan = record.plan.describe() if record.plan else f"{default_plan.describe()} (service default)"
            created = record.created_at.isoformat()
            print(f"{record.id}  {record.name}  {state}  {plan}  created {created}  last used {used}")
    elif not store.revoke(args.key_id):
        print(f"no active key with id {args.key_id}", file=sys.stderr)
        return 1
    return 0


class _NoSuchKey(Exception):
    pass


def _webhook_secret(args: argparse.Namespace, settings: Any) -> int:
    from .domain.errors import ServiceUnavailableError

    if args.secrets_prefix and not args.aws:
        print("--secrets-prefix goes with --aws", file=sys.stderr)
        return 2
    if args.aws and not (args.secrets_prefix or os.environ.get(SECRETS_PREFIX_VARIABLE)):
        # Each stage has its own prefix; a guessed one would make a secret that signs nothing.
        print(f"--aws needs --secrets-prefix (the stack's WebhookSecretsPrefix output) or {SECRETS_PREFIX_VARIABLE}",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        key_id, secrets = _aws_key_and_secrets(args, settings) if args.aws else _local_key_and_secrets(args, settings)
        secret = secrets.rotate(key_id) if args.rotate else secrets.secret_for(key_id)
    except _NoSuchKey as error:
        print(error, file=sys.stderr)
        return 1
    except ServiceUnavailableError as error:
        print(error.message, file=sys.stderr)
        return 1
    verb = "new webhook secret" if args.rotate else "webhook secret"
    print(f"{verb} of key {args.name} (id {key_id}); keep it as safe as the key:", file=sys.stderr)
    print(secret)
    return 0


def _local_key_and_secrets(args: argparse.Namespace, settings: Any) -> tuple[str, Any]:
    from .composition import SystemClock
    from .local.service import DataDir

    data = DataDir.of(settings)
    active = [record for record in data.key_store(SystemClock()).list() if record.name == args.name and not record.revoked]
    return _one_key(args.name, [record.id for record in active]), data.webhook_secrets(SystemClock())


def _aws_key_and_secrets(args: argparse.Namespace, settings: Any) -> tuple[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    from .adapters.aws.secrets_manager_webhook_secrets import SecretsManagerWebhookSecrets
    from .composition import aws_client
    from .domain.errors import ServiceUnavailableError

    try:
        # nameQuery matches by prefix: keep the exact name only.
        pages = aws_client("apigateway", settings).get_paginator("get_api_keys").paginate(nameQuery=args.name)
        ids = [key["id"] for page in pages for key in page.get("items", []) if key.get("name") == args.name]
    except (BotoCoreError, ClientError) as error:
        raise ServiceUnavailableError(f"could not read API keys from API Gateway: {error}") from error
    prefix = args.secrets_prefix or settings.webhook_secrets_prefix
    return _one_key(args.name, ids), SecretsManagerWebhookSecrets(aws_client("secretsmanager", settings), prefix)


def _one_key(name: str, ids: list[str]) -> str:
    if not ids:
        raise _NoSuchKey(f"no active key named {name}")
    if len(ids) > 1:
        raise _NoSuchKey(f"{len(ids)} keys are named {name} ({', '.join(ids)}); give each key a name of its own")
    return ids[0]


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} is not positive")
        return value

    return parse
