import { Type, type Static } from '@sinclair/typebox'

/** One tensor argument of a loss in the catalog. */
export const CatalogArg = Type.Object({
  name: Type.String(),
  kind: Type.String({ description: '"float", "index" (class indices, int64) or "float-or-index".' }),
  optional: Type.Boolean(),
  grad: Type.Boolean({ description: 'Whether grad: true returns its gradient.' }),
  doc: Type.String()
}, { $id: 'CatalogArg' })

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
}, { $id: 'CatalogEntry' })

/** `GET /loss`. */
export const Catalog = Type.Object({ losses: Type.Array(Type.Ref(CatalogEntry)) }, { $id: 'Catalog' })

export type CatalogEntryJson = Static<typeof CatalogEntry>
