import fs from 'node:fs'
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { type FastifyBaseLogger } from 'fastify'
import { ERRORS, type ErrorCode, LosshubError, shortened } from '../../errors'
import { type BodyAdmission } from '../../http/body-admission'
import { keptCopy } from '../../http/body-memory'
import { type AjvError, validationMessage } from '../../http/errors'
import { type Metrics } from '../../metrics'
import { observeRequest } from '../../plugins/observability'
import { fromInferRequest, GRPC_LOADER_OPTIONS, type ModelInferRequest, toInferResponse } from './grpc-messages'
import { HealthService } from './health'
import { refusingUndecodable, type UndecodableRequest } from './grpc-decoding'
import { typedContentsDecoder, typedContentsEncoder } from './grpc-contents'
import { alignedInPlace } from './grpc-raw'
import { claimStandIn, type CollectedMessage, collectedOf, decodedFrom } from './grpc-collected'
import { ClientGone } from '../../batching/departure'
import { type V2Service } from './service'
import { boundReceiving, widenWindows } from './grpc-streams'

/** The inference service's full name (proto/grpc_service.proto). */
export const INFERENCE_SERVICE = 'inference.GRPCInferenceService'

/** Calls in progress at once on one connection (Go's HTTP/2 server allows 250). */
export const MAX_STREAMS = 256

/** The app's bookkeeping of evaluations in progress, which a graceful shutdown waits for. */
export interface InFlight {
  /** Set once draining has let in what was on the wire: new evaluations are refused. */
  refusing: () => boolean
  begin: () => void
  end: () => void
}

/** What the gRPC front door needs from the app. */
export interface GrpcOptions {
  service: V2Service
  /** The largest message accepted, in bytes: the HTTP body limit (BODY_LIMIT_MB). */
  maxMessageBytes: number
  /** Most time a request may take to arrive (RECEIVE_TIMEOUT_MS, as for HTTP). */
  receiveTimeoutMs: number
  /** HTTP's line of large bodies (BODIES_IN_PROGRESS_MB), which large messages join. */
  bodies: BodyAdmission
  metrics: Metrics
  log: FastifyBaseLogger
  inFlight: InFlight
}

/**
 * A file of proto/, found by walking up from here: src/protocols/v2 under ts-node,
 * dist/src/protocols/v2 when built, /app/dist/src/protocols/v2 in the image (which ships proto/).
 */
export function protoFile (name: string): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'proto', name)
    if (fs.existsSync(file)) return file
    if (path.dirname(dir) === dir) throw new Error(`proto/${name} not found above ${__dirname}`)
  }
}

let loaded: protoLoader.PackageDefinition | undefined

/** The services of proto/grpc_service.proto and proto/health.proto, read once per process. */
function serviceDefinitions (): protoLoader.PackageDefinition {
  loaded ??= protoLoader.loadSync([protoFile('grpc_service.proto'), protoFile('health.proto')], GRPC_LOADER_OPTIONS)
  return loaded
}

/**
 * The Open Inference Protocol over gRPC (inference.GRPCInferenceService) and the gRPC health
 * service, on a port of their own in the same process. A thin translator onto the V2Service
 * that REST uses: the same model lookup, request translation, prepare(), batcher and output
 * selection. losshub's error codes become gRPC status codes (`grpcStatus`); the message is
 * REST's `<code>: <message>`, and the trailing metadata carries `losshub-code` (and, for a
 * retryable error, `retry-after` seconds and `grpc-retry-pushback-ms`).
 */
export class GrpcFrontDoor {
  readonly server: grpc.Server
  private readonly health: HealthService
  /** Answers every call whose request still arrives (set once listening). */
  private refuseArriving: (err: LosshubError) => void = () => {}

  constructor (private readonly opts: GrpcOptions) {
    // the message limit is the HTTP body limit: grpc-js's default (4 MiB) is below one [4096,1000] float32 tensor
    // at most MAX_STREAMS calls at once per connection (HTTP/2's default is unbounded): a client
    // that opens more waits for its own to end; each Watch stream, for one, holds a timer
    this.server = new grpc.Server({ 'grpc.max_receive_message_length': opts.maxMessageBytes, 'grpc.max_send_message_length': -1, 'grpc.max_concurrent_streams': MAX_STREAMS })
    const definitions = serviceDefinitions()
    this.health = new HealthService(() => opts.service.notReady() === undefined, [INFERENCE_SERVICE])
    const inference = refusingUndecodable(withTypedContents(definitions[INFERENCE_SERVICE] as grpc.ServiceDefinition), this.handlers(), r => this.undecodable(r))
    const health = refusingUndecodable(definitions['grpc.health.v1.Health'] as grpc.ServiceDefinition, this.health.handlers(), r => this.undecodable(r))
    this.server.addService(inference.definition, inference.handlers)
    this.server.addService(health.definition, health.handlers)
  }

  /** A request message that does not decode: INVALID_ARGUMENT saying so (counted, for ModelInfer, as a 400). */
  private undecodable (request: UndecodableRequest): grpc.ServiceError {
    const err = new LosshubError('INVALID_REQUEST', `request: not a ${request.method} request message of the .proto (${request.reason})`)
    return this.refusedEarly(request.method, err, performance.now())
  }

  /**
   * A request refused before its handler ran (undecodable, too slow to arrive, no room in the
   * line): logged, and counted as REST would count it.
   */
  private refusedEarly (rpc: string, err: LosshubError, started: number): grpc.ServiceError & { metadata: grpc.Metadata } {
    const failure = this.failure(rpc, err, started)
    // the model is named in the message, which has not arrived
    if (rpc === 'ModelInfer') observeRequest(this.opts.metrics, 'grpc', 'unknown', ERRORS[failure.losshubCode].status, elapsed(started) / 1000)
    return failure
  }

  /** Starts serving on `host:port` (0: any free port); resolves with the port bound. */
  async listen (port: number, host: string): Promise<number> {
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`
    const bound = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => err === null ? resolve(port) : reject(err))
    })
    widenWindows(this.server)
    const { receiveTimeoutMs, bodies: admission, maxMessageBytes } = this.opts
    this.refuseArriving = boundReceiving(this.server, {
      receiveTimeoutMs,
      admission,
      maxMessageBytes,
      starts: rpc => this.callStarts(rpc),
      fail: (rpc, err, started) => this.refusedEarly(rpc, err, started)
    })
    return bound
  }

  /** Answers `err` to every call whose request still arrives (the calls already whole are the batcher's to answer). */
  refuseArrivingCalls (err: LosshubError): void { this.refuseArriving(err) }

  /**
   * Stops: Watch streams end, calls in progress finish (tryShutdown) for at most `timeoutMs`,
   * then every connection is closed (forceShutdown).
   */
  async close (timeoutMs: number): Promise<void> {
    this.health.close()
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => { this.server.forceShutdown(); resolve() }, timeoutMs)
      this.server.tryShutdown(() => { clearTimeout(timer); resolve() })
    })
  }

  private handlers (): grpc.UntypedServiceImplementation {
    const { service } = this.opts
    return {
      ServerLive: this.unary('ServerLive', async () => ({ live: true })),
      ServerReady: this.unary('ServerReady', async () => ({ ready: service.notReady() === undefined })),
      ModelReady: this.unary('ModelReady', async (req: { name?: string, version?: string }) => {
        service.model(req.name ?? '', emptyAsUndefined(req.version))
        return { ready: service.notReady() === undefined }
      }),
      ServerMetadata: this.unary('ServerMetadata', async () => ({ name: service.name, version: service.version, extensions: service.extensions })),
      ModelMetadata: this.unary('ModelMetadata', async (req: { name?: string, version?: string }) => service.metadata(req.name ?? '', emptyAsUndefined(req.version))),
      ModelInfer: (call: grpc.ServerUnaryCall<ModelInferRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => { void this.infer(call, callback) }
    }
  }

  /** A unary handler: `work`'s answer, or its error as a gRPC status; one log line either way. */
  private unary<Req> (rpc: string, work: (request: Req) => Promise<unknown>): grpc.handleUnaryCall<Req, unknown> {
    return (call, callback) => {
      const started = performance.now()
      work(call.request).then(
        answer => {
          this.opts.log.info({ rpc, code: 'OK', ms: elapsed(started) }, 'grpc')
          callback(null, answer)
        },
        err => { callback(this.failure(rpc, err, started)) }
      )
    }
  }

  private async infer (call: grpc.ServerUnaryCall<ModelInferRequest, unknown>, callback: grpc.sendUnaryData<unknown>): Promise<void> {
    const { service, metrics } = this.opts
    const started = performance.now()
    const model = call.request.model_name ?? ''
    const label = service.has(model) ? model : 'unknown'
    // counted in flight (and refused while draining) from its stream's start: see `callStarts`
    try {
      service.admit()
      // an unknown model is NOT_FOUND before any check of the request
      service.model(model, emptyAsUndefined(call.request.model_version))
      const msg = fromInferRequest(call.request)
      const request = service.checkRequest(msg.request)
      // a client that cancels (or whose deadline passes) while queued is dropped from the queue;
      // grpc-js reports every stream's close as 'cancelled', so the listener goes once answered
      const gone = new ClientGone()
      const cancelled = (): void => gone.leave()
      call.once('cancelled', cancelled)
      // large raw tensors go to the kernel worker: read in place where the message was collected
      // into shared memory (grpc-collected.ts), moved there when left in grpc-js's buffer
      // (grpc-raw.ts), else copied into memory it reads in place; given back once the kernel has run
      const collected = collectedOf(call.request)
      const raw = msg.raw === undefined ? undefined : collected !== undefined ? lent(collected, msg.raw.contents) : keptCopy(msg.raw.contents)
      const result = await service.infer({
        model: msg.model,
        version: msg.version,
        request,
        raw: raw === undefined ? undefined : { contents: raw.parts },
        signal: gone,
        deadlineUs: deadlineUs(call.getDeadline())
      }).finally(() => {
        call.removeListener('cancelled', cancelled)
        raw?.release()
      })
      callback(null, toInferResponse(result, msg.rawOutputs))
      observeRequest(metrics, 'grpc', label, 200, elapsed(started) / 1000)
      this.opts.log.info({ rpc: 'ModelInfer', model: label, code: 'OK', ms: elapsed(started) }, 'grpc')
    } catch (err) {
      const failure = this.failure('ModelInfer', err, started, label)
      callback(failure)
      observeRequest(metrics, 'grpc', label, ERRORS[failure.losshubCode].status, elapsed(started) / 1000)
    }
  }

  /**
   * A call's start, at its stream's: a ModelInfer counts as in flight from then until it is
   * answered, as an HTTP request does from its headers, so that draining waits for one whose
   * message is still arriving or waiting its turn; once draining refuses new work, a new one is
   * SHUTTING_DOWN. Returns the call's end, or the error refusing it.
   */
  private callStarts (rpc: string): LosshubError | (() => void) {
    const { inFlight } = this.opts
    if (rpc !== 'ModelInfer') return NOTHING_TO_END
    if (inFlight.refusing()) return new LosshubError('SHUTTING_DOWN', 'draining: this instance is shutting down; retry', 1)
    inFlight.begin()
    return () => { inFlight.end() }
  }

  /** An error as a gRPC status, logged (INTERNAL with the error, other 5xx as warnings). */
  private failure (rpc: string, err: unknown, started: number, model?: string): grpc.ServiceError & { losshubCode: ErrorCode } {
    const [code, message, retryAfter] = classify(err)
    const ms = elapsed(started)
    // a defect of ours is an error, with its stack; a load or deadline answer (503, 504) is not
    if (code === 'INTERNAL') this.opts.log.error({ rpc, model, code, ms, err }, 'grpc call failed')
    else if (ERRORS[code].status >= 500) this.opts.log.warn({ rpc, model, code, ms, message }, 'grpc call not served')
    else this.opts.log.info({ rpc, model, code, ms }, 'grpc')
    const metadata = new grpc.Metadata()
    metadata.set('losshub-code', code)
    if (retryAfter !== undefined) {
      metadata.set('retry-after', String(retryAfter))
      metadata.set('grpc-retry-pushback-ms', String(retryAfter * 1000))
    }
    // a status message travels in an HTTP/2 header: cut to MAX_MESSAGE
    const details = shortened(`${code}: ${ERRORS[code].status === 500 ? 'internal error; the logs have the details' : message}`)
    return Object.assign(new Error(details), { code: grpcStatus(code), details, metadata, losshubCode: code })
  }
}

/** `contents` (views into `message`) held for a call until it releases them. */
function lent (message: CollectedMessage, contents: Buffer[]): { parts: Buffer[], release: () => void } {
  const release = message.hold()
  // its stream closed (and the memory went back) before the handler ran: no one waits for an answer
  if (release === undefined) throw new LosshubError('INVALID_REQUEST', 'request: the call\'s stream closed before it was served')
  return { parts: contents, release }
}

/**
 * The inference service with ModelInfer's float contents read into and written from typed
 * arrays (grpc-contents.ts), and its raw_input_contents left in the message's memory: shared
 * memory for a large message read there (grpc-collected.ts, whose stand-in is exchanged here),
 * else grpc-js's buffer (grpc-raw.ts).
 */
function withTypedContents (definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const infer = definition.ModelInfer
  const decode = typedContentsDecoder(bytes => infer.requestDeserialize(bytes) as ModelInferRequest)
  return {
    ...definition,
    ModelInfer: {
      ...infer,
      requestDeserialize: (bytes: Buffer) => {
        // a stand-in for a message read into shared memory: its contents lie aligned there already
        const collected = claimStandIn(bytes)
        if (collected !== undefined) {
          const request = decode(collected.bytes)
          decodedFrom(request, collected)
          return request
        }
        const request = decode(bytes)
        const raw = request.raw_input_contents
        if (raw.length > 0) request.raw_input_contents = alignedInPlace(bytes, raw) ?? raw
        return request
      },
      responseSerialize: typedContentsEncoder(response => infer.responseSerialize(response))
    }
  }
}

/**
 * The gRPC status of a losshub error code: 400s are INVALID_ARGUMENT (a tensor past
 * MAX_ELEMENTS, or a message past the limit, RESOURCE_EXHAUSTED; a request too slow to
 * arrive, 408 over HTTP, DEADLINE_EXCEEDED; a message in an encoding not read, 415 over HTTP,
 * UNIMPLEMENTED), 404s NOT_FOUND, 503s
 * (overloaded, starting, draining, a lost batch or worker: retry) UNAVAILABLE, 504
 * DEADLINE_EXCEEDED, anything else INTERNAL.
 */
export function grpcStatus (code: ErrorCode): grpc.status {
  if (code === 'TOO_LARGE' || code === 'PAYLOAD_TOO_LARGE') return grpc.status.RESOURCE_EXHAUSTED
  if (code === 'RECEIVE_TIMEOUT') return grpc.status.DEADLINE_EXCEEDED
  // over gRPC only a message's encoding can be unsupported: gRPC's answer to that
  if (code === 'UNSUPPORTED_MEDIA_TYPE') return grpc.status.UNIMPLEMENTED
  const http = ERRORS[code].status
  if (http === 404) return grpc.status.NOT_FOUND
  if (http === 503) return grpc.status.UNAVAILABLE
  if (http === 504) return grpc.status.DEADLINE_EXCEEDED
  if (http >= 400 && http < 500) return grpc.status.INVALID_ARGUMENT
  return grpc.status.INTERNAL
}

/** A thrown error as the API's code, message and Retry-After, as the REST error handler reads it. */
function classify (err: unknown): [ErrorCode, string, number | undefined] {
  if (err instanceof LosshubError) return [err.code, err.message, err.retryAfterSeconds]
  const validation = (err as { validation?: AjvError[] }).validation
  if (validation !== undefined && validation.length > 0) return [...validationMessage(validation, new Set()), undefined]
  return ['INTERNAL', 'internal error', undefined]
}

/** The time left before a gRPC deadline, in microseconds; undefined when the call has none. */
function deadlineUs (deadline: grpc.Deadline): number | undefined {
  const at = deadline instanceof Date ? deadline.getTime() : deadline
  return Number.isFinite(at) ? Math.max(0, (at - Date.now()) * 1000) : undefined
}

/** The end of a call that draining does not wait for. */
const NOTHING_TO_END = (): void => {}

const emptyAsUndefined = (s: string | undefined): string | undefined => (s === undefined || s === '' ? undefined : s)

const elapsed = (started: number): number => Math.round((performance.now() - started) * 100) / 100
