import { type V2ModelMetadataJson } from '../../../schemas/v2'
import { compositeModel } from './composite'
import { type Compile, type InferCall, type V2Options, type V2Result } from './service'

/**
 * The Open Inference Protocol's models besides the losses (each loss is a model of its own
 * name): a name, metadata and an inference function, looked up by V2Service, so that every
 * transport (REST, gRPC) serves them alike.
 */
export interface V2Model {
  readonly name: string
  readonly metadata: V2ModelMetadataJson
  /** Answers one inference call; `compile` compiles schemas with the app's validator settings. */
  infer: (call: InferCall, compile: Compile) => Promise<V2Result>
}

/** What the models are built from: the served losses, the batcher, the admission and deadline limits. */
export type V2ModelsOptions = Pick<V2Options, 'losses' | 'batcher' | 'limits' | 'requestTimeoutMs'>

/** The models besides the losses, by name: `composite`. A loss of the same name would hide one, so none may exist. */
export function v2Models (opts: V2ModelsOptions): ReadonlyMap<string, V2Model> {
  const models = [compositeModel(opts)]
  for (const m of models) {
    if (opts.losses.some(d => d.name === m.name)) throw new Error(`the V2 model '${m.name}' has the name of a served loss`)
  }
  return new Map(models.map(m => [m.name, m]))
}
