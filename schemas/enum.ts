import { Type, type TUnsafe } from '@sinclair/typebox'

/** A string enum (`{type: string, enum}`): one clear "must be one of" error and a plain OpenAPI enum. */
export function StringEnum<T extends string> (values: readonly T[], options: Record<string, unknown> = {}): TUnsafe<T> {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], ...options })
}

/**
 * Annotation keywords the schemas carry for client generators (names of enum constants), which
 * Fastify's Ajv must be told of (its strict mode refuses unknown keywords); they validate nothing.
 */
export const ANNOTATIONS = ['x-enum-varnames', 'x-enumNames']
