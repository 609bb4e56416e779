import { Type, type NumberOptions, type IntegerOptions, type TNumber, type TInteger, type TSchema } from '@sinclair/typebox'

/**
 * Numbers with an OpenAPI `format`, so that generated clients pick float64 and int64 (not
 * float32, BigDecimal or a platform int). Fastify's Ajv knows these formats (ajv-formats):
 * `double` and `int64` accept every JSON number and integer, so validation is unchanged.
 */

/** A float64 number (`format: double`). */
export function Double (options: NumberOptions = {}): TNumber {
  return Type.Number({ format: 'double', ...options })
}

/** A 64-bit integer (`format: int64`): class indices, dims, integer options. */
export function Int64 (options: IntegerOptions = {}): TInteger {
  return Type.Integer({ format: 'int64', ...options })
}

/** A 32-bit integer (`format: int32`): HTTP status codes, seconds. Ajv checks the range. */
export function Int32 (options: IntegerOptions = {}): TInteger {
  return Type.Integer({ format: 'int32', ...options })
}

/** The format a number or integer schema gets when its declaration names none. */
export const DEFAULT_FORMAT = { number: 'double', integer: 'int64' } as const

/**
 * A copy of `schema` (TypeBox's symbol keys kept) in which every `number` and `integer` without
 * a format gets the default one, at any depth (unions, arrays, objects). For schemas declared
 * elsewhere with plain `Type.Number()`/`Type.Integer()` (the losses' options).
 */
export function withFormats<T extends TSchema> (schema: T): T {
  return addFormats(schema) as T
}

function addFormats (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(addFormats)
  if (typeof node !== 'object' || node === null) return node
  const source = node as Record<string | symbol, unknown>
  const copy: Record<string | symbol, unknown> = {}
  for (const key of Reflect.ownKeys(source)) {
    const value = source[key]
    if (typeof key !== 'string') copy[key] = value
    // values (defaults, examples, enums) are data, not schemas: copied as they are
    else if (DATA_KEYWORDS.has(key)) copy[key] = value
    else if (NAMED_SCHEMAS.has(key) && typeof value === 'object' && value !== null) {
      copy[key] = Object.fromEntries(Object.entries(value).map(([name, s]) => [name, addFormats(s)]))
    } else copy[key] = addFormats(value)
  }
  const type = source.type
  if ((type === 'number' || type === 'integer') && source.format === undefined) copy.format = DEFAULT_FORMAT[type]
  return copy
}

/** Keywords whose value is an instance, not a schema. */
const DATA_KEYWORDS = new Set(['default', 'examples', 'example', 'enum', 'const'])

/** Keywords whose value maps names (which may be "default" or "example") to schemas. */
const NAMED_SCHEMAS = new Set(['properties', 'patternProperties', '$defs', 'definitions'])
