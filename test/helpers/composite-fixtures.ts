import fs from 'node:fs'
import path from 'node:path'
import { type Flat, type Form } from './tensors'

/** A term of a composite fixture, as `POST /losses` takes it. */
export interface Term { loss: string, weight?: number, args: Record<string, string>, options?: Record<string, unknown>, name?: string }

/** A composite fixture (scripts/fixtures/composite.py): its tensors, terms and PyTorch's answers. */
export interface Case {
  name: string
  args: Record<string, Flat>
  options: { terms: Term[] }
  expected: { loss: Flat, grad: Record<string, Flat> }
  term_values: Flat[]
  forms?: Form[]
}

/** Every composite fixture in test/fixtures/composite.json. */
export const COMPOSITE_CASES: readonly Case[] = (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'composite.json'), 'utf8')) as { cases: Case[] }).cases
