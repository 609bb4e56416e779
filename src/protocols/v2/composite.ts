import { fail, LosshubError } from '../../errors'
import { type AjvError, validationMessage } from '../../http/errors'
import { parseJsonBody } from '../../http/json-body'
import { type CompositeCall, type CompositeTermBody, prepareComposite, termOutput } from '../../kernels/composite'
import { termOptionsValidator } from '../../routes/composite'
import { type V2InferenceRequestJson, type V2ModelMetadataJson } from '../../../schemas/v2'
import { V2_COMPOSITE_MODEL, V2CompositeParameters, type V2CompositeParametersJson, V2CompositeTerms } from '../../../schemas/v2-composite'
import { PLATFORM } from './metadata'
import { type V2Model, type V2ModelsOptions } from './models'
import { callDeadline, inputTensors, type OutputChoice } from './request'
import { type Compile } from './service'

/**
 * Model `composite`: `POST /losses` over the Open Inference Protocol. The request parameter
 * `terms` holds the terms as JSON, `grad` asks for gradients, the inputs are the tensors the
 * terms bind by name (in the order that `tensors` would have); the outputs are `total`, one
 * per term, and `grad_<input>` per differentiated input. The checks and the kernel are those
 * of `POST /losses` (prepareComposite): this file only translates.
 */

/** The output holding the weighted total. */
const TOTAL = 'total'
/** The prefix of gradient outputs. */
const GRAD = 'grad_'

/** The composite model, answering from the served losses through the shared batcher. */
export function compositeModel (opts: V2ModelsOptions): V2Model {
  const losses = new Map(opts.losses.map(d => [d.name, d]))
  const metadata: V2ModelMetadataJson = {
    name: V2_COMPOSITE_MODEL,
    versions: ['1'],
    platform: PLATFORM,
    // the inputs and the other outputs are named by each request's terms
    inputs: [],
    outputs: [{ name: TOTAL, datatype: 'FP32', shape: [] }]
  }
  return {
    name: V2_COMPOSITE_MODEL,
    metadata,
    infer: async (call, compile) => {
      const req = call.request
      checkModelFields(req)
      const params = compositeParameters(req, compile)
      const terms = parseTerms(params.terms, compile)
      const names = termOutputNames(terms)
      // asking for a gradient output turns grad on unless the request says otherwise, as for a loss
      const grad = params.grad ?? (req.outputs ?? []).some(o => o.name.startsWith(GRAD))
      // evaluateComposite's steps but its JSON encoding: V2 answers with the kernel's own
      // tensors (raw bytes, datatypes), and under the request's and the transport's deadlines
      const composite = prepareComposite({ tensors: inputTensors(undefined, req, call.raw), terms, grad }, {
        losses, limits: opts.limits, validateOptions: termOptionsValidator({ compileValidationSchema: compile })
      })
      const available = outputsOf(composite, names)
      const chosen = chooseOutputs(req, available, grad, params.binary_data_output === true)
      const out = await opts.batcher.submit(composite.call, call.signal, callDeadline(opts.requestTimeoutMs, params.timeout, call.deadlineUs))
      return {
        // the composite kernel's own LossDef, under the model's name
        def: { ...composite.call.def, name: V2_COMPOSITE_MODEL },
        id: req.id,
        outputs: chosen.map(c => ({ ...c, tensor: out[available.get(c.name) as string] }))
      }
    }
  }
}

/** `model_name` and `model_version`, when given, must be those of the URL. */
function checkModelFields (req: V2InferenceRequestJson): void {
  if (req.model_name !== undefined && req.model_name !== V2_COMPOSITE_MODEL) fail('INVALID_REQUEST', `model_name: '${req.model_name}' is not the model of the URL, '${V2_COMPOSITE_MODEL}'`)
  if (req.model_version !== undefined && req.model_version !== '1') fail('INVALID_REQUEST', `model_version: '${req.model_version}' is not served; its only version is 1`)
}

/** The request parameters, checked: `terms`, `grad` and Triton's; a loss option here is refused with a pointer to the terms. */
function compositeParameters (req: V2InferenceRequestJson, compile: Compile): V2CompositeParametersJson {
  const params = { ...req.parameters }
  const validate = compile(V2CompositeParameters)
  if (validate(params) === true) return params as V2CompositeParametersJson
  const errors = (validate.errors ?? []).map(e => under('/parameters', e))
  const [code, message] = validationMessage(errors, new Set())
  if (errors[0].keyword !== 'additionalProperties') fail(code, message)
  fail(code, `${message}; model ${V2_COMPOSITE_MODEL} takes ${Object.keys(V2CompositeParameters.properties).join(', ')} (a term's options go in its \`options\`)`)
}

/** `parameters.terms` parsed (the body's JSON reader: its depth bound and prototype-key refusal) and checked as `POST /losses` checks `terms`. */
function parseTerms (text: string, compile: Compile): CompositeTermBody[] {
  let terms: unknown
  try {
    terms = parseJsonBody(Buffer.from(text, 'utf8'), 'parameters.terms')
  } catch (err) {
    // the reader's syntax errors speak of the body; this JSON is the parameter's
    if (err instanceof LosshubError) fail(err.code, err.message.replace(/^body: /, 'parameters.terms: '))
    throw err
  }
  const validate = compile(V2CompositeTerms)
  if (validate(terms) !== true) {
    const [code, message] = validationMessage((validate.errors ?? []).map(e => under('/parameters/terms', e)), new Set())
    fail(code, message)
  }
  return terms as CompositeTermBody[]
}

/** An Ajv error located under `path` of the request. */
function under (path: string, e: AjvError): AjvError {
  return { ...e, instancePath: path + e.instancePath }
}

/**
 * Each term's output name: its `name`, else `term<i>_<loss>`. Outputs need distinct names, so
 * two terms may not share one, and none may be `total` or begin with `grad_`.
 */
function termOutputNames (terms: readonly CompositeTermBody[]): string[] {
  const names: string[] = []
  terms.forEach((t, i) => {
    const name = t.name ?? `term${i}_${t.loss}`
    const at = `terms[${i}] (${t.name ?? t.loss}): name`
    if (name === TOTAL || name.startsWith(GRAD)) fail('INVALID_REQUEST', `${at}: '${name}' is kept for the outputs ${TOTAL} and ${GRAD}<input>; give the term another name`)
    const other = names.indexOf(name)
    if (other >= 0) fail('INVALID_REQUEST', `${at}: '${name}' is also the output of terms[${other}]; each term's output needs a name of its own`)
    names.push(name)
  })
  return names
}

/** Every output of a prepared composite, in order, with the kernel output that holds it. */
function outputsOf (composite: CompositeCall, names: readonly string[]): Map<string, string> {
  const outputs = new Map<string, string>([[TOTAL, 'loss']])
  names.forEach((name, i) => outputs.set(name, termOutput(i)))
  if (composite.call.grad) for (const g of composite.grads) outputs.set(`${GRAD}${g.tensor}`, `grad_${g.input}`)
  return outputs
}

/** The outputs asked for (all of them when `outputs` is absent), each binary or JSON as asked. */
function chooseOutputs (req: V2InferenceRequestJson, available: ReadonlyMap<string, string>, grad: boolean, binaryAll: boolean): OutputChoice[] {
  if (req.outputs === undefined) return [...available.keys()].map(name => ({ name, binary: binaryAll }))
  const seen = new Set<string>()
  return req.outputs.map((o, i) => {
    if (!available.has(o.name)) {
      if (!grad && o.name.startsWith(GRAD)) fail('INVALID_OPTION', `outputs[${i}]: '${o.name}' is a gradient, but parameters.grad is false`)
      fail('INVALID_REQUEST', `outputs[${i}]: ${V2_COMPOSITE_MODEL} has no output '${o.name}' for these terms; its outputs are ${[...available.keys()].join(', ')}`)
    }
    if (seen.has(o.name)) fail('INVALID_REQUEST', `outputs[${i}]: output '${o.name}' is asked for twice`)
    seen.add(o.name)
    if ((o.parameters?.classification ?? 0) > 0) fail('INVALID_REQUEST', `outputs[${i}].parameters.classification: '${o.name}' holds a loss or a gradient, not class scores; only 0 (no classification) is accepted`)
    return { name: o.name, binary: o.parameters?.binary_data ?? binaryAll }
  })
}
