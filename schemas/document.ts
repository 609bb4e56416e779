/**
 * Document-level parts of the OpenAPI description, for src/app.ts's @fastify/swagger
 * registration: tag descriptions, the license, and the rewrite of JSON Schema bounds into
 * OpenAPI 3.0's form (`transformObject`).
 */

/** The operation tags, in the order of API.md, each with what it groups. */
export const TAGS = [
  { name: 'regression', description: 'Losses between real-valued predictions and targets (mse, l1, huber, ...).' },
  { name: 'classification', description: 'Losses over logits, probabilities or class indices (cross_entropy, bce, focal, margin, Keras crossentropies, ...).' },
  { name: 'ranking', description: 'Embedding and ranking losses over pairs or triplets (margin_ranking, cosine_embedding, triplet_margin, ...).' },
  { name: 'sequence', description: 'Sequence losses (ctc).' },
  { name: 'segmentation', description: 'Set-overlap and Lovasz losses over segmentation masks (dice, jaccard, tversky, lovasz_*).' },
  { name: 'catalog', description: 'Which losses are served, with their arguments, options, defaults and references.' },
  { name: 'operations', description: 'Probes and metrics for orchestrators and monitoring.' }
]

/** package.json's license, as OpenAPI's info.license. */
export const LICENSE = { name: 'MIT', url: 'https://spdx.org/licenses/MIT.html' }

/**
 * Rewrites numeric `exclusiveMinimum`/`exclusiveMaximum` (JSON Schema draft 6+, which Fastify's
 * Ajv validates with) into OpenAPI 3.0's boolean form beside `minimum`/`maximum`, in place.
 * Use as `transformObject: ({ openapiObject }) => openapi30Bounds(openapiObject)`.
 */
export function openapi30Bounds<T> (doc: T): T {
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) { node.forEach(visit); return }
    if (typeof node !== 'object' || node === null) return
    const o = node as Record<string, unknown>
    for (const [exclusive, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
      const limit = o[exclusive]
      if (typeof limit !== 'number') continue
      const other = o[bound]
      // with both, the stricter one stays: an inclusive bound beyond the exclusive one wins
      const inclusiveWins = typeof other === 'number' && (bound === 'minimum' ? other > limit : other < limit)
      if (inclusiveWins) delete o[exclusive]
      else { o[bound] = limit; o[exclusive] = true }
    }
    Object.values(o).forEach(visit)
  }
  visit(doc)
  return doc
}
