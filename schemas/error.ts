import { Type, type Static } from '@sinclair/typebox'
import { Int32 } from './number'

/** The body of every error response. */
export const ErrorResponse = Type.Object({
  statusCode: Int32({ description: 'HTTP status code, repeated.' }),
  code: Type.String({ description: 'Stable machine-readable error code (see docs/errors.md).' }),
  error: Type.String({ description: 'HTTP status text.' }),
  message: Type.String({ description: 'What is wrong, naming the argument and the shapes or values at fault.' })
}, {
  $id: 'ErrorResponse',
  examples: [{ statusCode: 400, code: 'SHAPE_MISMATCH', error: 'Bad Request', message: 'target: expected shape [3] for input [3,2], got [4]' }]
})
export type ErrorResponseJson = Static<typeof ErrorResponse>
