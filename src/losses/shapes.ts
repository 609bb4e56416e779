import { fail } from '../errors'
import { type Arg } from './loss'
import { broadcastShapes, fmtShape } from '../tensor/tensor'

/**
 * Elements a shape costs to work with. A zero-size dim makes the tensor empty, but not the
 * work around it: a [0, 10^8] input still asks for a Range of 10^8 classes, and a [10^9, 0]
 * loss for 10^9 empty rows in a reply. So every dim counts at least 1.
 */
export function nominalSize (shape: readonly number[]): number {
  let n = 1
  for (const d of shape) n *= Math.max(d, 1)
  return n
}

/** Broadcasts the named arguments as PyTorch would, or fails naming them and their shapes. */
export function broadcastArgs (args: Record<string, Arg>, names: readonly string[]): number[] {
  const present = names.filter(n => args[n] !== undefined)
  const shape = broadcastShapes(...present.map(n => args[n].shape))
  if (shape === undefined) {
    fail('SHAPE_MISMATCH', `${present.join(', ')}: shapes ${present.map(n => `${n} ${fmtShape(args[n].shape)}`).join(', ')} do not broadcast`)
  }
  return shape
}

/** Requires `name` to broadcast to `shape` without enlarging it (PyTorch's in-place ops). */
export function broadcastsTo (args: Record<string, Arg>, name: string, shape: readonly number[]): void {
  const a = args[name]
  if (a === undefined) return
  const b = broadcastShapes(a.shape, shape)
  if (b === undefined || b.length !== shape.length || b.some((d, i) => d !== shape[i])) {
    fail('SHAPE_MISMATCH', `${name}: shape ${fmtShape(a.shape)} must broadcast to ${fmtShape(shape)}`)
  }
}

/** Requires the named arguments to share one shape. */
export function sameShapes (args: Record<string, Arg>, names: readonly string[]): number[] {
  const [first, ...rest] = names.filter(n => args[n] !== undefined)
  for (const n of rest) {
    if (fmtShape(args[n].shape) !== fmtShape(args[first].shape)) {
      fail('SHAPE_MISMATCH', `${n}: expected the shape of ${first} ${fmtShape(args[first].shape)}, got ${fmtShape(args[n].shape)}`)
    }
  }
  return args[first].shape
}

/** A loss's workspace of broadcasting the named arguments: the broadcast shape's elements. */
export function broadcastWorkspace (names: readonly string[]): (args: Record<string, Arg>) => Record<string, number> {
  return args => {
    const present = names.filter(n => args[n] !== undefined)
    const shape = broadcastShapes(...present.map(n => args[n].shape))
    return shape === undefined ? {} : { [`the broadcast of ${present.join(', ')} ${fmtShape(shape)}`]: nominalSize(shape) }
  }
}
