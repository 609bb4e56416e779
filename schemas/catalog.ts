import { Type, type Static } from '@sinclair/typebox'

/** One tensor argument of a loss in the catalog. */
export const CatalogArg = Type.Object({
  name: Type.String(),
  kind: Type.String({ description: '"float", "index" (class indices, int64) or "float-or-index".' }),
  optional: Type.Boolean(),
  grad: Type.Boolean({ description: 'Whether grad: true returns its gradient.' }),
  doc: Type.String()
}, { $id: 'CatalogArg' })

/** smooth_l1's entry, as `GET /loss/smooth_l1` answers (test/schemas/catalog.test.ts checks it). */
export const CATALOG_ENTRY_EXAMPLE = {
  name: 'smooth_l1',
  summary: 'Smooth L1: quadratic below beta, linear above.',
  category: 'regression',
  reference: 'torch.nn.functional.smooth_l1_loss',
  args: [
    { name: 'input', kind: 'float', optional: false, grad: true, doc: 'Predictions, any shape.' },
    { name: 'target', kind: 'float', optional: false, grad: false, doc: 'Targets, broadcastable with input.' }
  ],
  options: { beta: { default: 1, minimum: 0, description: 'Where the loss turns from quadratic to linear; 0 gives l1.', type: 'number' } },
  reductions: ['none', 'mean', 'sum'],
  example: { input: [0.2, -1.5, 3], target: [0, 0, 0], beta: 1 }
}

/** One loss of the catalog. */
export const CatalogEntry = Type.Object({
  name: Type.String(),
  summary: Type.String(),
  category: Type.String(),
  reference: Type.String({ description: 'The ground truth for values and gradients.' }),
  args: Type.Array(Type.Ref(CatalogArg)),
  options: Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema of each option, with its default.' }),
  reductions: Type.Array(Type.String()),
  example: Type.Record(Type.String(), Type.Unknown(), { description: 'A request body that works.' })
}, { $id: 'CatalogEntry', examples: [CATALOG_ENTRY_EXAMPLE] })

/** `GET /loss`. */
export const Catalog = Type.Object({ losses: Type.Array(Type.Ref(CatalogEntry)) }, {
  $id: 'Catalog',
  description: 'Every loss served, in the order of docs/losses.md (the example shows one entry).',
  examples: [{ losses: [CATALOG_ENTRY_EXAMPLE] }]
})

export type CatalogEntryJson = Static<typeof CatalogEntry>
