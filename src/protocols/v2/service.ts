import { fail, LosshubError } from '../../errors'
import { type AjvError } from '../../http/errors'
import { type LossDef } from '../../losses/loss'
import { prepare } from '../../kernels/prepare'
import { type Limits } from '../../kernels/admission'
import { type Batcher } from '../../batching/batcher'
import { type Departure } from '../../batching/departure'
import { notReady, type Readiness } from '../../routes/health'
import { V2InferenceRequestRead, type V2InferenceRequestJson, type V2ModelMetadataJson } from '../../../schemas/v2'
import { version } from '../../../package.json'
import { EXTENSIONS, modelMetadata } from './metadata'
import { callDeadline, optionsSchema, type RawTensors, tensorNames, translateRequest } from './request'
import { type SelectedOutput, selectOutputs } from './response'
import { type V2Model, v2Models } from './models'

/** What the Open Inference Protocol needs from the app. */
export interface V2Options {
  losses: readonly LossDef[]
  batcher: Batcher
  limits?: Limits
  /** The server's deadline (REQUEST_TIMEOUT_MS; 0: none): a request's `timeout` parameter may only shorten it. */
  requestTimeoutMs: number
  /** The readiness of `GET /readyz`, shared by the V2 probes. */
  readiness: Readiness
}

/** A compiled validator, as the app's Ajv makes them: true, or false with `errors`. */
export type Validate = ((data: unknown) => boolean) & { errors?: AjvError[] | null }

/** Compiles a JSON schema with the app's validator settings (defaults filled in, no coercion). */
export type Compile = (schema: object) => Validate

/** One inference call, as any transport hands it over. */
export interface InferCall {
  model: string
  /** The version asked for; undefined: the server's choice (the only one, 1). */
  version?: string
  request: V2InferenceRequestJson
  /** Tensor bytes beside the JSON: REST's binary form or gRPC's raw_input_contents. */
  raw?: RawTensors
  /** Aborted when the client goes away: a queued request leaves the queue. */
  signal?: Departure
  /** The transport's own deadline (gRPC's), in microseconds from now. */
  deadlineUs?: number
}

/** What an inference call answers: the model, the request's id, the outputs in order. */
export interface V2Result { def: LossDef, id?: string, outputs: SelectedOutput[] }

/**
 * The Open Inference Protocol's operations, whatever the transport: model lookup, metadata,
 * readiness and inference. REST (index.ts) and gRPC (grpc.ts) are translators onto these, so
 * requests go through the same translation into prepare() and the same batcher, with the same
 * checks, and answer with the same outputs.
 */
export class V2Service {
  readonly name = 'losshub'
  readonly version = version
  readonly extensions = EXTENSIONS
  private readonly byName: Map<string, LossDef>
  /** The models besides the losses (composite), from models.ts. */
  private readonly models: ReadonlyMap<string, V2Model>
  private readonly metadataOf: Map<string, V2ModelMetadataJson>
  private readonly optionsOf: Map<string, object>
  private readonly validators = new WeakMap<object, Validate>()
  private compile: Compile | undefined

  constructor (private readonly opts: V2Options) {
    this.byName = new Map(opts.losses.map(d => [d.name, d]))
    this.models = v2Models(opts)
    this.metadataOf = new Map(opts.losses.map(d => [d.name, modelMetadata(d)]))
    this.optionsOf = new Map(opts.losses.map(d => [d.name, optionsSchema(d)]))
  }

  /** The validator compiler of every check here: the V2 routes' own, handed over once the app is ready. */
  useCompiler (compile: Compile): void { this.compile = compile }

  /** Whether a model of this name is served. */
  has (model: string): boolean { return this.byName.has(model) || this.models.has(model) }

  /** The loss (or other model) served as `model`; an unknown model or a version other than 1 is a 404. */
  model (model: string, ver?: string): LossDef | V2Model {
    const def = this.byName.get(model) ?? this.models.get(model) ?? fail('UNKNOWN_LOSS', `model '${model}' is not served; known models: ${[...this.byName.keys(), ...this.models.keys()].join(', ')}`)
    if (ver !== undefined && ver !== '1') fail('NOT_FOUND', `model '${model}' has no version '${ver}'; its only version is 1`)
    return def
  }

  /** A model's inputs and outputs. */
  metadata (model: string, ver?: string): V2ModelMetadataJson {
    const def = this.model(model, ver)
    return 'infer' in def ? def.metadata : this.metadataOf.get(def.name) as V2ModelMetadataJson
  }

  /** Why the server is not ready (the rule of GET /readyz), or undefined when it is. */
  notReady (): [LosshubError['code'], string] | undefined { return notReady(this.opts.readiness) }

  /** Throws STARTING, SHUTTING_DOWN or OVERLOADED (retry after 1 s) unless the server is ready. */
  ready (): void {
    const why = this.notReady()
    if (why !== undefined) throw new LosshubError(why[0], why[1], 1)
  }

  /** Inference sheds load as POST /loss/* does (src/plugins/pressure.ts), on the same decision. */
  admit (): void {
    if (this.opts.readiness.overloaded()) throw new LosshubError('OVERLOADED', 'overloaded: shedding load; retry', 1)
  }

  /**
   * Checks an inference request object against the protocol's schema, as REST's route does for
   * its bodies (a transport whose messages were not checked so calls this first). Inputs' data
   * is the transport's to form: an array of elements, or a typed array of them.
   */
  checkRequest (request: unknown): V2InferenceRequestJson {
    const validate = this.validator(V2InferenceRequestRead)
    if (validate(request) !== true) throw validationError(validate.errors ?? [])
    return request as V2InferenceRequestJson
  }

  /**
   * Runs an inference request: translated into the body of `POST /loss/{name}` (options
   * checked by the loss's own schema), prepared, queued in the batcher with the shortest of
   * the server's deadline, the request's `timeout` and the transport's, and answered with the
   * outputs it selects.
   */
  async infer (call: InferCall): Promise<V2Result> {
    const def = this.model(call.model, call.version)
    refuseSharedMemory('inputs', call.request.inputs)
    refuseSharedMemory('outputs', call.request.outputs ?? [])
    // an empty list asks for no output in particular: every output, as when it is absent (Triton reads it so)
    if (call.request.outputs?.length === 0) delete call.request.outputs
    if ('infer' in def) return await def.infer(call, schema => this.validator(schema))
    const t = translateRequest(def, call.request, call.raw, this.optionsCheck(def))
    const prepared = prepare(def, t.body, this.opts.limits)
    const out = await this.opts.batcher.submit(prepared, call.signal, callDeadline(this.opts.requestTimeoutMs, t.timeoutUs, call.deadlineUs))
    return { def, id: call.request.id, outputs: selectOutputs(def, out, t.outputs, t.binaryAll) }
  }

  /**
   * Checks a loss's options with its schema. A failure is a validation error located under
   * `parameters` (or `inputs` for a missing tensor), which the transport maps to its answer.
   */
  private optionsCheck (def: LossDef): (options: Record<string, unknown>) => void {
    const validate = this.validator(this.optionsOf.get(def.name) as object)
    const tensors = tensorNames(def)
    return options => {
      if (validate(options) === true) return
      throw validationError((validate.errors ?? []).map(e => {
        const missing = e.keyword === 'required' ? String(e.params.missingProperty) : undefined
        return { ...e, instancePath: (missing !== undefined && tensors.has(missing) ? '/inputs' : '/parameters') + e.instancePath }
      }))
    }
  }

  private validator (schema: object): Validate {
    let validate = this.validators.get(schema)
    if (validate === undefined) {
      if (this.compile === undefined) throw new Error('V2Service: no validator compiler yet (the app is not ready)')
      validate = this.compile(schema)
      this.validators.set(schema, validate)
    }
    return validate
  }
}

/** A failed schema check in the form Fastify's validation errors take (the app's error handler maps it). */
function validationError (validation: AjvError[]): Error {
  return Object.assign(new Error('invalid request'), { validation, validationContext: 'body', statusCode: 400 })
}

/**
 * Triton's shared-memory parameters on inputs or outputs are refused, by name: the other
 * parameters losshub has no use for are ignored (as Triton ignores them), but these would leave
 * an input without its data, or an output where the client would not look for it.
 */
function refuseSharedMemory (list: string, tensors: ReadonlyArray<{ parameters?: Record<string, unknown> }>): void {
  tensors.forEach((tensor, i) => {
    const key = Object.keys(tensor.parameters ?? {}).find(k => k.startsWith('shared_memory_'))
    if (key !== undefined) fail('INVALID_REQUEST', `${list}.${i}.parameters.${key}: Triton's shared-memory extension is not served; tensors travel in the request (data, the binary form or raw_input_contents) and outputs come back in the response`)
  })
}
