// A bxnode client in Node.js, written only from proto/ and the README ("The signed
// bytes", "Refusals", "The members file"): no bxnode code, no generated stubs.
//
// Against one node over mTLS it checks, printing one line per check:
//   1. health (grpc.health.v1) for "" and for bxnode.v1.NodeService;
//   2. reflection (grpc.reflection.v1): the services listed, and the file that defines
//      bxnode.v1.NodeService, fetched and loaded;
//   3. one signed lookup (Ed25519 over DSSE PAE, with Node's built-in crypto) whose
//      answer's signature, signer, key id and request digest are verified;
//   4. one refusal: the same request bytes sent again (a replayed nonce), its reason
//      read from bxnode-reason and from grpc-status-details-bin (google.rpc.Status ->
//      google.rpc.ErrorInfo), and its signed refusal (bxnode-refusal-bin) verified.
// Any check that fails prints "FAILED: ..." on stderr and exits 1.
//
// node client.mjs --address HOST:PORT --ca ca.crt --cert tls.crt --key tls.key
//     --signing-key signing.key --node-id KGZ-BS --members members.json
//     --responder KAZ-BS --proto-dir ../../../proto --document N1122334:KAZ:P
//     --operator officer-7 --purpose border_check --legal-basis TEXT --case-ref CASE-1
//     [--tls-name localhost]

import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REQUEST_TYPE = "application/vnd.bxnode.v1.request+proto";
const RESPONSE_TYPE = "application/vnd.bxnode.v1.response+proto";

class CheckFailed extends Error {}

// One line, never a stack trace, for a check that fails while setting up (a missing
// option, a key file of the wrong size) as for one that fails later.
function fail(e) {
  console.error(`FAILED: ${e instanceof CheckFailed ? e.message : e.stack || e}`);
  process.exit(1);
}
process.on("uncaughtException", fail);

function check(ok, what) {
  if (!ok) throw new CheckFailed(what);
}

// --- README "The signed bytes" ------------------------------------------------------

// PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
function pae(type, body) {
  const t = Buffer.from(type, "utf8");
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${t.length} `, "ascii"), t,
    Buffer.from(` ${body.length} `, "ascii"), body,
  ]);
}

const sha256 = (bytes) => crypto.createHash("sha256").update(bytes).digest();

// key_id = lower-case hex of the first 8 bytes of SHA-256 over the raw 32-byte key
const keyId = (rawPublicKey) => sha256(rawPublicKey).subarray(0, 8).toString("hex");

// Ed25519 keys as DER (RFC 8410): PKCS#8 around a 32-byte seed, SPKI around a raw key.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

function privateKeyFromSeed(seed) {
  check(seed.length === 32, "the signing key file holds a 32-byte seed (hex)");
  return crypto.createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
}

function rawPublicKey(privateKey) {
  const spki = crypto.createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return spki.subarray(spki.length - 32);
}

const publicKeyFromRaw = (raw) => crypto.createPublicKey({
  key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });

// --- setup --------------------------------------------------------------------------

const { values: opt } = parseArgs({ options: Object.fromEntries([
  "address", "ca", "cert", "key", "signing-key", "node-id", "members", "responder",
  "proto-dir", "document", "operator", "purpose", "legal-basis", "case-ref", "tls-name",
].map((name) => [name, { type: "string" }])) });
for (const name of ["address", "ca", "cert", "key", "signing-key", "node-id", "members",
  "responder", "proto-dir", "document", "operator", "purpose", "legal-basis", "case-ref",
]) check(opt[name], `--${name} is required`);

const credentials = grpc.credentials.createSsl(
  fs.readFileSync(opt.ca), fs.readFileSync(opt.key), fs.readFileSync(opt.cert));
// The TLS name to check the node's certificate against, when the address is an IP
// (the development certificates name "localhost" first, and 127.0.0.1).
const channelOptions = opt["tls-name"]
  ? { "grpc.ssl_target_name_override": opt["tls-name"],
      "grpc.default_authority": opt["tls-name"] }
  : {};
const LOADER = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

function load(file, includeDir) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file,
    { ...LOADER, includeDirs: [includeDir] }));
}

// bxnode's messages, for the signed payloads, from proto/ alone.
const bxRoot = new protobuf.Root();
bxRoot.resolvePath = (origin, target) => path.join(opt["proto-dir"], target);
bxRoot.loadSync("bxnode/v1/bxnode.proto", { keepCase: true });
const RequestPayload = bxRoot.lookupType("bxnode.v1.RequestPayload");
const ResponsePayload = bxRoot.lookupType("bxnode.v1.ResponsePayload");
const SignedEnvelope = bxRoot.lookupType("bxnode.v1.SignedEnvelope");

const rpcRoot = new protobuf.Root();
rpcRoot.resolvePath = (origin, target) =>
  target.startsWith("google/protobuf/") ? target : path.join(HERE, "protos", target);
rpcRoot.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"],
  { keepCase: true });
const RpcStatus = rpcRoot.lookupType("google.rpc.Status");
const ErrorInfo = rpcRoot.lookupType("google.rpc.ErrorInfo");

const unary = (client, method, request) => new Promise((resolve, reject) => {
  client[method](request, { deadline: Date.now() + 10_000 },
    (err, reply) => (err ? reject(err) : resolve(reply)));
});

// --- 1. health ----------------------------------------------------------------------

async function health() {
  const { grpc: { health: { v1 } } } = load("grpc/health/v1/health.proto",
    path.join(HERE, "protos"));
  const client = new v1.Health(opt.address, credentials, channelOptions);
  for (const service of ["", "bxnode.v1.NodeService"]) {
    const reply = await unary(client, "Check", { service });
    console.log(`health ${JSON.stringify(service)}: ${reply.status}`);
  }
  client.close();
}

// --- 2. reflection v1 ---------------------------------------------------------------

function reflect(requests) {
  const { grpc: { reflection: { v1 } } } = load("grpc/reflection/v1/reflection.proto",
    path.join(HERE, "protos"));
  const client = new v1.ServerReflection(opt.address, credentials, channelOptions);
  return new Promise((resolve, reject) => {
    const answers = [];
    const call = client.ServerReflectionInfo({ deadline: Date.now() + 10_000 });
    call.on("data", (answer) => answers.push(answer));
    call.on("error", reject);
    call.on("end", () => { client.close(); resolve(answers); });
    for (const r of requests) call.write(r);
    call.end();
  });
}

// FileDescriptorSet { repeated FileDescriptorProto file = 1 }: the protos as bytes.
function fileDescriptorSet(files) {
  const w = protobuf.Writer.create();
  for (const f of files) w.uint32((1 << 3) | 2).bytes(f);
  return Buffer.from(w.finish());
}

async function reflection() {
  const [listing, defining] = await reflect([
    { list_services: "" }, { file_containing_symbol: "bxnode.v1.NodeService" }]);
  check(listing.message_response === "list_services_response",
    `list_services answered ${listing.message_response}`);
  const names = listing.list_services_response.service.map((s) => s.name).sort();
  console.log(`reflection v1 services: ${names.join(" ")}`);
  check(defining.message_response === "file_descriptor_response",
    `file_containing_symbol answered ${defining.message_response}`);
  const files = defining.file_descriptor_response.file_descriptor_proto;
  const reflected = protoLoader.loadFileDescriptorSetFromBuffer(fileDescriptorSet(files),
    LOADER);
  const lookup = reflected["bxnode.v1.NodeService"]?.Lookup;
  check(lookup, "the reflected file defines no bxnode.v1.NodeService.Lookup");
  console.log(`reflection v1 NodeService.Lookup: ${lookup.requestType.type.name} -> ` +
    `${lookup.responseType.type.name} (${files.length} file(s))`);
}

// --- 3. a signed lookup -------------------------------------------------------------

const members = JSON.parse(fs.readFileSync(opt.members, "utf8")).members;

function responderKeys(nodeId) {
  const m = members.find((x) => x.node_id === nodeId);
  check(m, `${nodeId} is not in the members file`);
  return new Map(m.signing_keys.filter((k) => !k.revoked).map((k) => {
    const raw = Buffer.from(k.public_key, "base64");
    return [keyId(raw), publicKeyFromRaw(raw)];
  }));
}

// The verifier's order (README): the signature over PAE first, then parse, then bind.
function verifyResponse(envelope, requestDigest) {
  check(envelope.payload_type === RESPONSE_TYPE, `payload type ${envelope.payload_type}`);
  check(envelope.signer === opt.responder, `signed by ${envelope.signer}`);
  const key = responderKeys(opt.responder).get(envelope.key_id);
  check(key, `key id ${envelope.key_id} is not one of ${opt.responder}'s keys`);
  check(crypto.verify(null, pae(envelope.payload_type, envelope.payload), key,
    envelope.signature), "the response signature does not verify");
  const payload = ResponsePayload.toObject(ResponsePayload.decode(envelope.payload),
    { enums: String, longs: String, defaults: true, oneofs: true });
  check(payload.responder === envelope.signer && payload.key_id === envelope.key_id,
    "the payload's responder and key id differ from the envelope's");
  check(Buffer.from(payload.request_digest).equals(requestDigest),
    "the response is not bound to this request's digest");
  return payload;
}

function signedRequest() {
  const signingKey = privateKeyFromSeed(
    Buffer.from(fs.readFileSync(opt["signing-key"], "utf8").trim(), "hex"));
  const kid = keyId(rawPublicKey(signingKey));
  const [number, issuing_state, document_type = ""] = opt.document.split(":");
  const payload = Buffer.from(RequestPayload.encode(RequestPayload.fromObject({
    header: {
      requester: opt["node-id"], key_id: kid, operator: opt.operator,
      purpose: opt.purpose, legal_basis: opt["legal-basis"], case_ref: opt["case-ref"],
      issued_at_ms: Date.now(), nonce: crypto.randomBytes(32),
    },
    kind: "QUERY_KIND_DOCUMENT",
    items: [{ document: { number, issuing_state, document_type } }],
  })).finish());
  const envelope = {
    payload_type: REQUEST_TYPE, payload, signer: opt["node-id"], key_id: kid,
    signature: crypto.sign(null, pae(REQUEST_TYPE, payload), signingKey),
  };
  return { request: { envelope }, digest: sha256(pae(REQUEST_TYPE, payload)) };
}

async function lookup(node, request, digest) {
  const reply = await unary(node, "Lookup", request);
  const payload = verifyResponse(reply.envelope, digest);
  check(payload.body === "lookup", `the answer is a ${payload.body}`);
  console.log(`lookup ${opt.responder}: signature verified (key ${reply.envelope.key_id}), ` +
    "bound to the request digest");
  for (const r of payload.lookup.results) {
    const shown = ["reference", "action", "contact", "source_agency"]
      .filter((k) => r[k] && r[k] !== "ACTION_CODE_UNSPECIFIED")
      .map((k) => `${k}=${r[k]}`);
    console.log(`lookup item ${r.index}: ${[r.outcome, ...shown].join(" ")}`);
  }
}

// --- 4. a refusal -------------------------------------------------------------------

async function refusal(node, request, digest) {
  let err;
  try {
    await unary(node, "Lookup", request);
  } catch (e) {
    err = e;
  }
  check(err, "the replayed request was answered");
  const status = Object.entries(grpc.status).find(([, v]) => v === err.code)[0];
  const [reason] = err.metadata.get("bxnode-reason");
  const [details] = err.metadata.get("grpc-status-details-bin");
  check(details, "no grpc-status-details-bin");
  const rich = RpcStatus.decode(details);
  check(rich.code === err.code && rich.message === err.details,
    "google.rpc.Status code or message differs from the call's");
  check(rich.details.length === 1 &&
    rich.details[0].type_url === "type.googleapis.com/google.rpc.ErrorInfo",
  "the standard details hold no one ErrorInfo");
  const info = ErrorInfo.decode(rich.details[0].value);
  const meta = Object.entries(info.metadata).sort().map(([k, v]) => `${k}=${v}`).join(",");
  console.log(`refusal: ${status} bxnode-reason=${reason} ErrorInfo.reason=${info.reason} ` +
    `domain=${info.domain} metadata=${meta}`);
  const [signed] = err.metadata.get("bxnode-refusal-bin");
  check(signed, "no bxnode-refusal-bin");
  const envelope = SignedEnvelope.toObject(SignedEnvelope.decode(signed), { defaults: true });
  const payload = verifyResponse(envelope, digest);
  check(payload.body === "refusal", `the signed refusal holds a ${payload.body}`);
  console.log(`signed refusal: signature verified, bound to the request digest, ` +
    `${payload.refusal.status}/${payload.refusal.reason}`);
}

async function main() {
  await health();
  await reflection();
  const { bxnode: { v1 } } = load("bxnode/v1/bxnode.proto", opt["proto-dir"]);
  const node = new v1.NodeService(opt.address, credentials, channelOptions);
  const { request, digest } = signedRequest();
  await lookup(node, request, digest);
  await refusal(node, request, digest);
  node.close();
}

main().then(() => process.exit(0), fail);
