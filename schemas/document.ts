/**
 * Document-level parts of the OpenAPI description, for src/app.ts's @fastify/swagger
 * registration: servers, tag descriptions, the license, and the rewrite of JSON Schema's
 * exclusive bounds into a form every OpenAPI reader agrees on (`transformObject`).
 */

/**
 * Where clients send requests. Generators take the first as their default base URL (without
 * one they fall back to port 80); the relative one lets Swagger UI (GET /docs) call the instance
 * that serves it.
 */
export const SERVERS = [
  { url: 'http://localhost:8080', description: 'A local instance on the default PORT (8080); give generated clients the deployment\'s base URL instead.' },
  { url: '/', description: 'The instance that serves this document (as Swagger UI at /docs calls it).' }
]

/** The operation tags, the loss categories first in the order of docs/losses.md, each with what it groups. */
export const TAGS = [
  { name: 'regression', description: 'Losses between real-valued predictions and targets (mse, l1, huber, ...).' },
  { name: 'classification', description: 'Losses over logits, probabilities or class indices (cross_entropy, bce, focal, margin, Keras crossentropies, ...).' },
  { name: 'ranking', description: 'Embedding and ranking losses over pairs or triplets (margin_ranking, cosine_embedding, triplet_margin, ...).' },
  { name: 'sequence', description: 'Sequence losses (ctc).' },
  { name: 'segmentation', description: 'Set-overlap and Lovasz losses over segmentation masks (dice, jaccard, tversky, lovasz_*).' },
  { name: 'composite', description: 'Several losses over shared tensors in one call: their values, weighted total and its gradient.' },
  { name: 'by-name', description: 'Any loss by its name, for clients that choose the loss at run time; an unknown name gets 404 with the list of losses served.' },
  { name: 'catalog', description: 'Which losses are served, with their arguments, options, defaults and references.' },
  { name: 'open-inference', description: 'The Open Inference Protocol (KServe V2, as Triton serves it over REST, with its binary tensor data extension): every loss is a model named after it.' },
  { name: 'operations', description: 'Probes and metrics for orchestrators and monitoring.' }
]

/** package.json's license, as OpenAPI's info.license. */
export const LICENSE = { name: 'MIT', url: 'https://spdx.org/licenses/MIT.html' }

/**
 * Rewrites numeric `exclusiveMinimum`/`exclusiveMaximum` (JSON Schema draft 6+, which Fastify's
 * Ajv validates with, and OpenAPI 3.1) in place, into `minimum`/`maximum` plus `not: {enum: [bound]}`.
 * OpenAPI 3.0 wants booleans there and JSON Schema 2019-09 numbers, so readers of one misread the
 * other (a boolean `true` taken as the bound 1); an inclusive bound with the bound value itself
 * excluded means the same to both. An inclusive bound stricter than the exclusive one replaces it.
 * Examples and defaults are values, not schemas, and are left alone.
 * Use as `transformObject: ({ openapiObject }) => portableBounds(openapiObject)`.
 */
export function portableBounds<T> (doc: T): T {
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) { node.forEach(visit); return }
    if (typeof node !== 'object' || node === null) return
    const o = node as Record<string, unknown>
    const excluded: number[] = []
    for (const [exclusive, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
      const limit = o[exclusive]
      if (typeof limit !== 'number') continue
      delete o[exclusive]
      const other = o[bound]
      // with both, the stricter one stays: an inclusive bound beyond the exclusive one wins
      const inclusiveWins = typeof other === 'number' && (bound === 'minimum' ? other > limit : other < limit)
      if (inclusiveWins) continue
      o[bound] = limit
      excluded.push(limit)
    }
    if (excluded.length > 0) {
      const not = { enum: excluded }
      if (o.not === undefined) o.not = not
      else o.allOf = [...(o.allOf as unknown[] ?? []), { not }]
    }
    for (const [key, value] of Object.entries(o)) {
      if (NAMED_SCHEMAS.has(key) && typeof value === 'object' && value !== null) Object.values(value).forEach(visit)
      else if (!VALUE_KEYWORDS.has(key)) visit(value)
    }
  }
  visit(doc)
  return doc
}

/** Keywords whose value is an instance (data), not a schema. */
const VALUE_KEYWORDS = new Set(['example', 'examples', 'default', 'enum', 'const'])

/** Keywords whose value maps names (which may be "example" or "default") to schemas. */
const NAMED_SCHEMAS = new Set(['properties', 'patternProperties', '$defs', 'definitions'])
