"""The one registry of reason codes: every code bxnode can emit, with its status and audience.

A reason code is the stable, machine-readable half of a refusal (STYLE.md "One registry of
reason codes"): the ``bxnode-reason`` trailing metadata and the signed ``Refusal`` a peer
gets, the ``reason`` of an audit entry, the ``(reason)`` an operator's command prints.  Each
code is listed here exactly once, with

* ``status``: the gRPC status name it travels with (the peer-facing services and the
  LocalService), or ``None`` for a purely local error (configuration, a CLI command, a file
  import, a document checked offline) that never crosses a gRPC boundary as a status;
* ``audience``: ``peer`` (can reach a peer over the wire, in ``bxnode-reason`` or a signed
  Refusal), ``operator`` (CLI, configuration, the local API only) or ``both``;
* ``meaning``: one line.

``tests/unit/core/test_reasons.py`` reads every module under ``node/`` and every policy
under ``policies/`` and fails on a code emitted but not listed here, on a code listed here
but emitted nowhere, and on a peer-visible code missing from the README's refusal tables.
Codes a peer sees are part of the protocol: never rename one.  Data only, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = ["AUDIENCES", "REASONS", "Audience", "ReasonCode", "is_registered", "lookup",
           "peer_visible"]

Audience = Literal["peer", "operator", "both"]
AUDIENCES: tuple[Audience, ...] = ("peer", "operator", "both")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasonCode:
    code: str
    status: str | None
    audience: Audience
    meaning: str


UNAUTH, INVALID, DENIED = "UNAUTHENTICATED", "INVALID_ARGUMENT", "PERMISSION_DENIED"
PRECOND, NOT_FOUND, EXHAUSTED = "FAILED_PRECONDITION", "NOT_FOUND", "RESOURCE_EXHAUSTED"
UNAVAIL, INTERNAL, ABORTED = "UNAVAILABLE", "INTERNAL", "ABORTED"
DATA_LOSS, UNIMPLEMENTED = "DATA_LOSS", "UNIMPLEMENTED"
LOCAL = None  # a purely local error: configuration, a CLI command, a file, an offline check


def _r(code: str, status: str | None, audience: Audience, meaning: str) -> ReasonCode:
    return ReasonCode(code=code, status=status, audience=audience, meaning=meaning)


REASONS: tuple[ReasonCode, ...] = (
    # --- every signed service: who is asking (README "What the node checks", steps 0-7) ----
    _r("unlisted_certificate", UNAUTH, "peer",
       "the TLS client certificate belongs to no federation member (step 0)"),
    _r("no_client_certificate", UNAUTH, "peer", "the call came without a TLS client certificate"),
    _r("unknown_node", UNAUTH, "both", "the signer (or a node named) is not a federation member"),
    _r("node_revoked", UNAUTH, "both", "the node is revoked in the trusted registry"),
    _r("unknown_key", UNAUTH, "peer", "the key id is not one of the signer's keys"),
    _r("key_revoked", UNAUTH, "peer", "the signing key is revoked"),
    _r("key_expired", UNAUTH, "peer", "the signing key is outside its validity window"),
    _r("bad_signature", UNAUTH, "both",
       "a signature does not verify (an envelope over PAE; a registry document's signature)"),
    _r("bad_payload_type", UNAUTH, "peer", "the envelope's payload type is not the method's"),
    _r("signer_mismatch", UNAUTH, "peer", "the payload header names another signer or key id"),
    _r("tls_identity_mismatch", UNAUTH, "peer",
       "the TLS client certificate is not listed for the signing node"),
    _r("stale_request", UNAUTH, "peer", "issued_at is outside the allowed clock skew"),
    _r("replayed_nonce", UNAUTH, "peer", "the nonce was seen before"),
    _r("unauthenticated", UNAUTH, "both", "default of Unauthenticated: authentication failed"),
    # --- every signed service: what is asked ----------------------------------------------
    _r("malformed_request", INVALID, "both", "the request message does not parse"),
    _r("malformed_payload", INVALID, "both",
       "the signed payload does not parse or breaks its shape"),
    _r("bad_envelope", INVALID, "both", "the envelope lacks a field or a field is out of bounds"),
    _r("payload_too_large", INVALID, "both", "the signed payload is over its size bound"),
    _r("invalid_argument", INVALID, "both",
       "a value is out of its bounds (default of InvalidInput)"),
    _r("invalid_request", INVALID, "both", "default of PeerError: the request is invalid"),
    _r("bad_identifier", INVALID, "both",
       "a node id, key id, operator id or reference is not of its form"),
    _r("batch_too_large", INVALID, "both", "more items than the protocol or the call allows"),
    _r("empty_request", INVALID, "both", "a request or file holds no items"),
    _r("bad_document_number", INVALID, "both", "a document number is not 1-20 of A-Z 0-9"),
    _r("bad_country", INVALID, "both",
       "not an ICAO 9303 code, or a nationality-only code as a state"),
    _r("bad_document_type", INVALID, "both", "a document type ICAO 9303 does not define"),
    _r("bad_date", INVALID, "both", "a date that is not a valid date of its form"),
    _r("bad_name", INVALID, "both", "a name holds a character a name cannot hold, or is too long"),
    _r("bad_nonce", INVALID, "both", "the nonce is not 16-64 bytes"),
    _r("bad_timestamp", INVALID, "both", "issued_at is missing"),
    _r("bad_case_ref", INVALID, "both", "the case reference is missing or too long"),
    _r("bad_legal_basis", INVALID, "both", "the legal basis is missing or too long"),
    _r("unknown_purpose", INVALID, "both", "a purpose the protocol does not know"),
    _r("rate_limited", EXHAUSTED, "peer",
       "faster or more at once than the agreement's rate_per_s, burst or max_in_flight"),
    _r("registry_expired", UNAVAIL, "peer",
       "the trusted registry expired longer than expiry_grace_s ago: fail closed"),
    _r("audit_unavailable", UNAVAIL, "both",
       "the audit entry could not be made durable: nothing was answered; retry"),
    _r("internal_error", INTERNAL, "both",
       "an unexpected error (and the default of BxError): no detail given; retry later"),
    # --- policy (policies/*.rego, node/policy) --------------------------------------------
    _r("no_agreement", DENIED, "peer", "no agreement for this responder/requester pair"),
    _r("agreement_not_in_force", DENIED, "peer", "agreements exist, none in force today"),
    _r("agreement_ambiguous", DENIED, "peer", "several agreements in force with one valid_from"),
    _r("purpose_not_agreed", DENIED, "peer", "the purpose is not in the agreement"),
    _r("dataset_not_agreed", DENIED, "peer", "a dataset asked is not in the agreement"),
    _r("batch_exceeds_agreement", DENIED, "peer", "more items than the agreement's max_batch"),
    _r("quota_exhausted", EXHAUSTED, "peer", "the agreement's daily_quota would be exceeded"),
    _r("legal_basis_required", DENIED, "peer", "legal basis or case reference blank"),
    _r("bcp_not_facing_requester", DENIED, "peer",
       "a BCP asked about does not face the requester's country"),
    _r("window_exceeds_agreement", DENIED, "peer",
       "a crossing window is longer than the agreement's max_window_hours"),
    _r("field_not_allowed", DENIED, "both", "a follow-up field policy does not release"),
    _r("no_fields_requested", INVALID, "both",
       "a follow-up names no field (refused as the payload is parsed, before policy)"),
    _r("policy_error", INTERNAL, "peer", "the policy gave no valid decision (the owner's fault)"),
    _r("policy_unavailable", UNAVAIL, "peer", "the OPA server did not answer; retry"),
    _r("person_index_rebuilding", UNAVAIL, "peer",
       "a person found no hit while the index is rebuilt after a large change; retry"),
    _r("policy_denied", DENIED, "peer", "default of PolicyDenied when the policy named no reason"),
    _r("policy_invalid", LOCAL, "operator", "the policy folder or its data does not load"),
    _r("policy_cache_undeclared", LOCAL, "operator",
       "the lookup policy reads an input its cache_inputs does not declare"),
    # --- CrossingService ------------------------------------------------------------------
    _r("bad_window", INVALID, "both", "a window or period ends before it starts"),
    _r("window_too_long", INVALID, "both", "a window longer than 31 days"),
    _r("bad_location", INVALID, "peer", "a question names neither or both of a BCP and a section"),
    _r("bad_bcp_code", INVALID, "both", "a BCP code not of the form KAZ-KORDAI"),
    _r("bad_direction", INVALID, "both", "a question without a direction (entry or exit)"),
    _r("bad_time", INVALID, "both", "a time that is not ISO 8601 UTC"),
    _r("unknown_bcp", INVALID, "both", "the BCP is not one of this node's"),
    _r("unknown_section", INVALID, "peer", "this node has no BCP on that border section"),
    # --- FollowUpService -------------------------------------------------------------------
    _r("unknown_hit_reference", NOT_FOUND, "both",
       "no such lookup from this requester, no such item, or a reference not answered"),
    _r("bad_hit_reference", INVALID, "peer", "the hit is named by a digest that is not 32 bytes"),
    _r("not_a_hit", PRECOND, "peer", "the item named was answered NO_HIT"),
    _r("unknown_field", INVALID, "both", "a field that does not exist for that kind of record"),
    _r("too_many_fields", INVALID, "peer", "a follow-up asks for more fields than allowed"),
    _r("unknown_followup", NOT_FOUND, "both", "no such follow-up (or not the caller's)"),
    _r("alert_withdrawn", PRECOND, "peer", "the alert behind the hit was withdrawn since"),
    _r("receipt_expired", PRECOND, "peer", "the receipt of that lookup is past its retention"),
    _r("record_withdrawn", PRECOND, "both", "the record behind the hit no longer exists"),
    _r("not_found", NOT_FOUND, "both", "default of the follow-up desk's NotFound"),
    _r("failed_precondition", PRECOND, "both",
       "default of the desk's, the retention checks' and the watchlist's precondition errors"),
    # --- the follow-up desk (CLI, LocalService) ------------------------------------------------
    _r("already_decided", PRECOND, "operator", "the follow-up was already approved or denied"),
    _r("field_not_requested", INVALID, "operator", "an approval names a field not requested"),
    _r("same_officer", PRECOND, "operator", "four eyes: the first approver cannot confirm"),
    _r("confirmation_differs", PRECOND, "operator",
       "four eyes: the confirmation names other fields than the first approval"),
    _r("bad_deny_reason", INVALID, "operator", "a denial's reason is empty or too long"),
    # --- AuditService, AuditorService, WitnessService -----------------------------------------
    _r("not_your_entry", DENIED, "peer",
       "no audit entry of a request of the caller's has this digest"),
    _r("no_such_entry", DENIED, "both", "no audit entry with that sequence number"),
    _r("not_yet_sealed", DENIED, "both", "the entry is not yet in a signed checkpoint"),
    _r("not_an_auditor", DENIED, "both", "the caller (or key) is no member with the auditor role"),
    _r("limit_too_large", INVALID, "peer", "an auditor search asks for more than 10,000 entries"),
    _r("not_a_node", DENIED, "peer", "only federation nodes submit checkpoints to a witness"),
    _r("bad_witness_request", INVALID, "peer", "a witness request that does not parse (C2SP 400)"),
    _r("request_too_large", INVALID, "peer", "a witness request over its size bound"),
    _r("unknown_log", NOT_FOUND, "peer", "the witness knows no log of that origin (C2SP 404)"),
    _r("checkpoint_not_trusted", DENIED, "peer",
       "the checkpoint is not signed by the log's key (C2SP 403)"),
    _r("old_size_mismatch", ABORTED, "peer",
       "the old size is not the size this witness last cosigned (C2SP 409)"),
    _r("inconsistent_checkpoint", PRECOND, "peer",
       "the checkpoint is inconsistent with one already witnessed (C2SP 409/422)"),
    _r("bad_consistency_proof", PRECOND, "both",
       "the consistency proof does not prove the new tree extends the old (C2SP 422)"),
    _r("no_logs_to_witness", PRECOND, "peer", "this node witnesses no logs"),
    _r("bad_clock", PRECOND, "peer", "the witness's clock is out of range"),
    _r("witness_race", PRECOND, "peer", "the witness state changed underneath; retry"),
    _r("witness_state_corrupt", PRECOND, "both", "the stored witness state is corrupt"),
    _r("witness_state_mixup", PRECOND, "both", "the stored witness state belongs to another log"),
    _r("log_superseded", PRECOND, "peer",
       "a checkpoint of a log origin its node reset: the witness cosigns a later epoch"),
    _r("log_origin_unlisted", PRECOND, "peer",
       "a checkpoint of a log origin the federation does not list for its node (a reset "
       "the registry has not recorded)"),
    _r("malformed_note", INVALID, "both", "a signed note that does not parse"),
    _r("note_too_large", INVALID, "both", "a signed note over its size bound"),
    _r("note_unverified", UNAUTH, "both", "a note (checkpoint) not signed by the log"),
    _r("bad_note_signature", UNAUTH, "both", "a note signature that does not verify"),
    _r("missing_required_signature", UNAUTH, "both", "a note lacks a signature it needs"),
    _r("malformed_checkpoint", INVALID, "both", "a checkpoint note body that does not parse"),
    _r("wrong_origin", INVALID, "both", "a checkpoint of another log"),
    _r("bad_verifier_key", LOCAL, "operator", "a note verifier key that does not parse"),
    _r("bad_cosignature", UNAUTH, "operator", "a witness answered without a valid cosignature"),
    _r("bad_proof", LOCAL, "operator", "a Merkle proof that does not verify"),
    _r("bad_inclusion_proof", LOCAL, "operator", "an inclusion proof that does not verify"),
    _r("bad_proof_input", LOCAL, "operator", "a proof's index or size is out of range"),
    _r("bad_proof_bundle", LOCAL, "operator", "a proof bundle that does not verify"),
    _r("wrong_entry", LOCAL, "operator", "a proven entry that is not the one of our request"),
    _r("hash_store_corrupt", DATA_LOSS, "operator",
       "the stored tree hashes disagree with the leaves"),
    _r("inconsistent_log", DATA_LOSS, "operator",
       "refusing to sign a checkpoint inconsistent with the last one signed"),
    _r("no_signing_key", LOCAL, "operator", "this audit log has no signing key"),
    # --- RegistryService and the federation registry ----------------------------------------
    _r("not_a_member", DENIED, "both",
       "GetRegistry from a caller that is not a member; locally: this node is not listed"),
    _r("registry_version_unknown", NOT_FOUND, "both", "this node never applied that version"),
    _r("unknown_signer", LOCAL, "operator", "a registry signature by a key no state holds"),
    _r("duplicate_signature", LOCAL, "operator", "a key signed a registry version twice"),
    _r("under_signed", LOCAL, "operator", "below the trusted version's threshold (TUF 5.3.4)"),
    _r("under_signed_new_keys", LOCAL, "operator",
       "below the new version's own threshold (TUF 5.3.5)"),
    _r("rollback", LOCAL, "operator", "a registry version not newer than the trusted one"),
    _r("version_gap", LOCAL, "operator", "a registry version that skips versions"),
    _r("log_origin_rollback", LOCAL, "operator",
       "a registry version that moves a node's log origin back to an earlier epoch"),
    _r("expired", LOCAL, "operator", "the final registry version of a walk is expired (freeze)"),
    _r("unsigned", LOCAL, "operator", "a registry version with no signature"),
    _r("malformed", LOCAL, "operator", "a registry document that does not parse or breaks a rule"),
    _r("bad_endpoint", LOCAL, "operator", "an endpoint list that is empty, too long or malformed"),
    _r("wrong_type", LOCAL, "operator", "signed.type is not bxnode-registry"),
    _r("oversized", LOCAL, "operator", "a registry document over 1 MiB"),
    _r("chain_too_long", LOCAL, "operator", "more than 100 registry versions offered at once"),
    _r("empty", LOCAL, "operator", "no registry version offered"),
    _r("mismatch", LOCAL, "operator", "two registry documents merged sign different contents"),
    _r("already_member", LOCAL, "operator", "a proposal adds a node already a member"),
    _r("not_in_registry", LOCAL, "operator", "a proposal names a node the registry does not list"),
    _r("already_revoked", LOCAL, "operator", "a proposal revokes a node already revoked"),
    _r("bad_registry", LOCAL, "operator", "the node's registry file is refused"),
    # --- the requester's side: our client asking a peer ----------------------------------
    _r("peer_unavailable", UNAVAIL, "operator", "no address of the peer answered"),
    _r("bad_response", UNAUTH, "operator",
       "the peer's answer does not verify or has the wrong shape"),
    _r("response_not_bound", UNAUTH, "operator", "the peer's answer is not bound to our request"),
    _r("unknown", LOCAL, "operator",
       "a peer refused without a bxnode-reason (transport's refusal)"),
    _r("no_endpoint", LOCAL, "operator", "the member lists no address to call"),
    # --- LocalService (node/local) ----------------------------------------------------------
    _r("no_identity", UNAUTH, "operator", "no client certificate and no bearer token"),
    _r("bad_certificate", UNAUTH, "operator", "the client certificate does not parse"),
    _r("bad_certificate_identity", UNAUTH, "operator", "the client certificate names no UID or CN"),
    _r("bad_token", UNAUTH, "operator", "the bearer token is malformed or names no subject"),
    _r("bad_token_subject", UNAUTH, "operator", "the token's subject is not a valid operator id"),
    _r("token_too_large", UNAUTH, "operator", "the bearer token is over its size bound"),
    _r("token_expired", UNAUTH, "operator", "the token has expired"),
    _r("token_not_yet_valid", UNAUTH, "operator", "the token is not valid yet"),
    _r("token_bad_signature", UNAUTH, "operator", "the token's signature does not verify"),
    _r("token_unknown_key", UNAUTH, "operator", "the token is signed by a key the JWKS lacks"),
    _r("token_bad_algorithm", UNAUTH, "operator", "the token's algorithm is not allowed"),
    _r("token_wrong_issuer", UNAUTH, "operator", "the token is from another issuer"),
    _r("token_wrong_audience", UNAUTH, "operator", "the token is for another audience"),
    _r("tokens_not_accepted", UNAUTH, "operator", "this node accepts no bearer tokens"),
    _r("role_required", DENIED, "operator", "the caller lacks the role the method needs"),
    _r("not_authorised", DENIED, "both", "default of NotAuthorised"),
    _r("message_too_large", EXHAUSTED, "operator", "a LocalService message over 8 MiB"),
    _r("not_yet_available", UNIMPLEMENTED, "operator", "the method's parser is not installed"),
    _r("unknown_peer", INVALID, "operator", "a peer that is not a federation member"),
    _r("ambiguous_peer", INVALID, "operator", "a country with several nodes: name the node id"),
    _r("bad_peer_list", INVALID, "operator", "a peer list too long, repeated or mixing all"),
    _r("no_peers", INVALID, "operator", "no peer named"),
    _r("not_a_peer", INVALID, "operator", "a peer that is this node, or has no node role"),
    _r("no_agreement_on_file", LOCAL, "operator",
       "fan-out to all: a peer not asked, no agreement in force (a NOT_ASKED result)"),
    _r("empty_item", INVALID, "operator", "an item naming no document or person"),
    _r("bad_state", INVALID, "operator", "a follow-up state filter that does not exist"),
    _r("bad_digest", INVALID, "operator", "a lookup digest that is not 32 bytes"),
    _r("bad_deadline", INVALID, "operator", "a deadline or watch out of its bounds"),
    _r("deadline_exceeded", UNAVAIL, "operator",
       "the fan-out deadline passed before the peer answered"),
    _r("watch_ended", UNAVAIL, "operator", "the owner's follow-up watch ended"),
    # --- watchlist (CLI, LocalService) ------------------------------------------------------
    _r("unknown_alert", NOT_FOUND, "operator", "no alert with that reference"),
    _r("alert_exists", PRECOND, "operator", "an alert with that reference already exists"),
    _r("already_withdrawn", PRECOND, "operator", "the alert was already withdrawn"),
    _r("too_many_withdrawals", LOCAL, "operator", "a sync would withdraw more than --max-withdraw"),
    _r("bad_source", INVALID, "operator", "a source name not of its form"),
    _r("wrong_source", PRECOND, "operator", "a row or alert of another source"),
    _r("bad_sync_file", LOCAL, "operator", "a sync file with bad rows"),
    _r("bad_feed", LOCAL, "operator", "a delta feed with bad events"),
    _r("feed_gap", LOCAL, "operator", "a feed event that skips sequence numbers"),
    _r("feed_replay", LOCAL, "operator", "a feed event already applied"),
    _r("no_change", INVALID, "operator", "an update that changes nothing"),
    _r("duplicate", INVALID, "operator", "a watchlist row or person given twice"),
    _r("bad_reason", INVALID, "operator", "a change or hold reason empty or too long"),
    _r("bad_filter", INVALID, "operator", "a LocalService alert list filter out of its set"),
    _r("bad_action", INVALID, "operator", "an action code that does not exist"),
    _r("bad_kind", INVALID, "operator", "a kind that is neither document nor person"),
    _r("bad_field", INVALID, "operator", "an import field of the wrong type or too long"),
    _r("missing_field", INVALID, "operator", "a required import field is missing"),
    _r("bad_manifest", LOCAL, "operator", "a manifest file that is not valid CSV or JSONL"),
    _r("bad_paxlst", LOCAL, "operator", "a PAXLST message that does not parse (segment named)"),
    _r("paxlst_too_large", LOCAL, "operator", "a PAXLST message over its bounds"),
    _r("bad_mrz", LOCAL, "operator", "an MRZ that is not TD1 or TD3"),
    _r("bad_check_digit", LOCAL, "operator", "an MRZ check digit that does not match"),
    _r("unreadable_index", LOCAL, "operator", "alert references stored as blind indexes"),
    # --- crossings (CLI, local listener) -----------------------------------------------------
    _r("bad_bcp_file", LOCAL, "operator", "a BCP file that does not parse"),
    _r("bad_event", INVALID, "operator", "a crossing event not entry, exit or refused_entry"),
    _r("bad_mode", INVALID, "operator", "a crossing mode not road, rail, air or foot"),
    _r("duplicate_record", INVALID, "operator", "a record id sent twice in one call"),
    _r("record_conflict", INVALID, "operator", "a record id already stored with other content"),
    # --- names compare, matching ---------------------------------------------------------------
    _r("bad_pair", LOCAL, "operator", "a names-compare line that is not a pair"),
    _r("bad_person", LOCAL, "operator", "a names-compare person of the wrong shape"),
    _r("bad_system", LOCAL, "operator", "an unknown transliteration system"),
    _r("bad_threshold", LOCAL, "operator", "a match threshold outside 0..1"),
    _r("bad_max_candidates", LOCAL, "operator", "max_candidates outside 1..1000"),
    # --- retention --------------------------------------------------------------------------
    _r("hold_state", PRECOND, "operator", "default of a retention hold error"),
    _r("already_held", PRECOND, "operator", "the case is already on hold"),
    _r("not_held", PRECOND, "operator", "the case is not on hold"),
    _r("bad_subject", LOCAL, "operator", "subject-access needs a document or a person, not both"),
    _r("bad_retention", LOCAL, "operator", "a [retention] value out of range"),
    # --- configuration and keys -------------------------------------------------------------
    _r("config_error", LOCAL, "operator", "default of ConfigError"),
    _r("bad_config", LOCAL, "operator", "a node.toml value or section that is wrong"),
    _r("missing_config", LOCAL, "operator", "no node.toml where it is looked for"),
    _r("missing_file", LOCAL, "operator", "a file named in the configuration does not exist"),
    _r("insecure_file_mode", LOCAL, "operator", "a key file others can read"),
    _r("dev_keys_refused", LOCAL, "operator", "development keys outside dev_mode"),
    _r("bad_members_file", LOCAL, "operator", "a members file that does not parse"),
    _r("bad_signing_key", LOCAL, "operator", "a signing key file that is not a 32-byte seed"),
    _r("self_not_listed", LOCAL, "operator",
       "this node is not in its own members file or trusted registry: it will not start"),
    _r("self_revoked", LOCAL, "operator",
       "this node is revoked in its trusted registry: it will not start"),
    _r("key_not_registered", LOCAL, "operator", "this node's signing key is not listed for it"),
    _r("tls_not_registered", LOCAL, "operator", "this node's TLS certificate is not listed for it"),
    _r("no_db_key", LOCAL, "operator", "no database key ($BXNODE_DB_KEY or key file)"),
    _r("bad_db_key", LOCAL, "operator", "a database key that is not 64 hex characters"),
    _r("wrong_db_key", LOCAL, "operator", "the database key does not open the database"),
    _r("no_field_key", LOCAL, "operator", "no field key ($BXNODE_FIELD_KEY or key file)"),
    _r("bad_field_key", LOCAL, "operator", "a field key that is not 64 hex characters"),
    _r("wrong_field_key", LOCAL, "operator",
       "the field key is not the one the database was written with"),
    # --- the signing key in a PKCS#11 token (node/keys/, README "Hardware keys") ----------
    _r("bad_pkcs11_uri", LOCAL, "operator", "a [keys] signing_key pkcs11: URI that is refused"),
    _r("pkcs11_module_unavailable", LOCAL, "operator", "the PKCS#11 module cannot be loaded"),
    _r("pkcs11_no_pin", LOCAL, "operator", "no usable PIN in the variable or file configured"),
    _r("pkcs11_wrong_pin", LOCAL, "operator", "the token refused the PIN"),
    _r("pkcs11_pin_locked", LOCAL, "operator", "the token has locked its user PIN"),
    _r("pkcs11_token_not_found", LOCAL, "operator", "no token matches the URI"),
    _r("pkcs11_token_ambiguous", LOCAL, "operator", "several tokens match the URI"),
    _r("pkcs11_object_not_found", LOCAL, "operator", "no private key in the token matches"),
    _r("pkcs11_object_ambiguous", LOCAL, "operator", "several private keys match the URI"),
    _r("pkcs11_object_exists", LOCAL, "operator",
       "a new key was to be made under a label or id already in use"),
    _r("pkcs11_not_ed25519", LOCAL, "operator", "the object is not an Ed25519 private key"),
    _r("pkcs11_no_public_key", LOCAL, "operator", "no Ed25519 public key beside the private key"),
    _r("pkcs11_key_mismatch", LOCAL, "operator",
       "the token's private key does not sign for the public key beside it"),
    _r("pkcs11_error", LOCAL, "operator", "another PKCS#11 failure, named in the message"),
    _r("signing_key_unavailable", UNAVAIL, "both",
       "the token holding the node's signing key failed to sign: nothing was answered"),
    # --- storage ------------------------------------------------------------------------------
    _r("unavailable", UNAVAIL, "both",
       "default of EnvironmentFault; what a peer is told of any of our own failures it "
       "should retry on (the database down, busy, locked or full)"),
    _r("no_database", LOCAL, "operator", "the database does not exist"),
    _r("database_unavailable", UNAVAIL, "operator", "the database cannot be reached or opened"),
    _r("database_busy", UNAVAIL, "operator", "no database connection free in time"),
    _r("database_locked", UNAVAIL, "operator", "a lock held elsewhere past busy_timeout_s"),
    _r("database_full", UNAVAIL, "operator", "the disk under the database is full"),
    _r("database_auth_failed", LOCAL, "operator", "PostgreSQL refused our credentials"),
    _r("database_too_old", LOCAL, "operator", "PostgreSQL older than 13"),
    _r("bad_dsn", LOCAL, "operator", "a PostgreSQL DSN that does not parse"),
    _r("dsn_has_password", LOCAL, "operator", "a DSN holding a password"),
    _r("bad_password_file", LOCAL, "operator", "a PostgreSQL password file without a password"),
    _r("schema_outdated", LOCAL, "operator", "the database schema is behind the code"),
    _r("schema_newer", LOCAL, "operator", "the database schema is ahead of the code"),
    _r("schema_mismatch", LOCAL, "operator", "a schema version whose DDL differs from the code's"),
    _r("schema_unregistered", LOCAL, "operator",
       "a schema DDL not registered in node/store/schema.py"),
    _r("sealed_field_malformed", DATA_LOSS, "operator",
       "a sealed field shorter than nonce and tag"),
    _r("sealed_field_unreadable", DATA_LOSS, "operator", "a sealed field that does not open"),
    _r("sealed_field_misplaced", DATA_LOSS, "operator",
       "a sealed record in a row that is not its own"),
    _r("sealed_field_altered", DATA_LOSS, "operator",
       "a row whose plain columns differ from the copies sealed in its record"),
    _r("unprotected_codec", LOCAL, "operator",
       "a copy target without an identifier-protecting codec"),
    _r("source_not_sqlcipher", LOCAL, "operator", "a store copy from something not SQLCipher"),
    _r("target_not_empty", LOCAL, "operator", "a store copy into a database that is not empty"),
    _r("unknown_table", LOCAL, "operator",
       "the source holds rows in tables the copy does not know"),
    _r("copy_incomplete", UNAVAIL, "operator", "a store copy wrote fewer rows than it read"),
    # --- operator console (node/web; HTTP status from the gRPC one, README "For the officer")
    _r("cross_site_request", DENIED, "operator",
       "a form post whose Origin / Sec-Fetch-Site is another site's"),
    _r("csrf_failed", DENIED, "operator", "a form post without this session's CSRF token"),
    _r("not_signed_in", UNAUTH, "operator", "a console action without a signed-in session"),
    _r("session_expired", UNAUTH, "operator", "the console session timed out without use"),
    _r("session_certificate_mismatch", UNAUTH, "operator",
       "a certificate session used over a connection with another certificate"),
    _r("sign_in_rate_limited", EXHAUSTED, "operator",
       "too many console sign-in attempts from one address in a minute"),
    _r("oidc_state_mismatch", UNAUTH, "operator",
       "an OpenID Connect answer whose state is not the pending sign-in's"),
    _r("oidc_nonce_mismatch", UNAUTH, "operator", "an ID token whose nonce is not the sign-in's"),
    _r("oidc_unavailable", UNAUTH, "operator",
       "the identity provider's token endpoint failed or returned no ID token"),
    _r("oidc_code_refused", UNAUTH, "operator",
       "the identity provider refused the authorization code (used, expired, PKCE)"),
    _r("oidc_not_configured", PRECOND, "operator", "OpenID Connect sign-in is not configured"),
    _r("bad_upload", INVALID, "operator", "an uploaded manifest or PAXLST file does not read"),
    _r("sync_not_pending", PRECOND, "operator",
       "a watchlist sync confirmed that was not previewed by this officer, or waited too long"),
    _r("sync_plan_changed", PRECOND, "operator",
       "the watchlist changed between a sync's preview and its confirmation"),
    # --- backups and restore (node/backup, node/audit/hold.py, node/audit/tail.py) ----------
    _r("audit_log_on_hold", UNAVAIL, "both",
       "the node's audit log was restored and may be behind its witnesses: it signs nothing"),
    _r("log_epoch_corrupt", LOCAL, "operator", "the stored audit log epoch is not 1..999999"),
    _r("backup_malformed", LOCAL, "operator", "a file that is not a well-formed bxnode backup"),
    _r("backup_truncated", LOCAL, "operator", "a backup shorter than its signed manifest says"),
    _r("backup_bad_signature", LOCAL, "operator",
       "a backup whose manifest signature does not verify under the node's keys"),
    _r("backup_tampered", LOCAL, "operator",
       "a backup whose encrypted bytes or contents do not match its signed manifest"),
    _r("backup_other_node", LOCAL, "operator", "a backup of another node"),
    _r("backup_wrong_key", LOCAL, "operator", "a backup encrypted to another backup key"),
    _r("backup_other_backend", LOCAL, "operator", "a backup of the other storage backend"),
    _r("backup_wrong_db_key", LOCAL, "operator",
       "a backup's database that the node's database key does not open"),
    _r("bad_backup_key", LOCAL, "operator", "a backup key file that is not one"),
    _r("file_exists", LOCAL, "operator", "a key file that would be overwritten"),
    _r("tail_mismatch", LOCAL, "operator", "a copy of the log that does not extend the local one"),
    _r("tail_not_newer", LOCAL, "operator", "a copy of the log no longer than the local one"),
    _r("tail_unverified", LOCAL, "operator",
       "a copy of the log (or the result) that does not verify"),
)

_BY_CODE: Mapping[str, ReasonCode] = MappingProxyType({r.code: r for r in REASONS})


def lookup(code: str) -> ReasonCode:
    """The registry entry of ``code``; ``KeyError`` for a code that is not registered."""
    return _BY_CODE[code]


def is_registered(code: str) -> bool:
    return code in _BY_CODE


def peer_visible() -> tuple[ReasonCode, ...]:
    """Every code that can reach a peer (audience ``peer`` or ``both``)."""
    return tuple(r for r in REASONS if r.audience != "operator")
