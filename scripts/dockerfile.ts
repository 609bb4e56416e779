/**
 * A small Dockerfile reader, for what can be checked without a Docker engine: the lint in
 * test/deploy/dockerfile.test.ts and the build emulation in scripts/verify-image.ts.
 * It understands what this repo's Dockerfile uses: line continuations, comments, stages,
 * exec-form (JSON) and shell-form arguments.
 */

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  op: string
  /** The raw argument text, continuations joined. */
  args: string
  /** 1-based line of the keyword. */
  line: number
}

export interface Stage {
  /** `AS name`, or the stage's index as a string when unnamed (as Docker refers to it). */
  name: string
  image: string
  instructions: Instruction[]
}

/** Splits a Dockerfile into instructions (comments and blank lines dropped). */
export function parseInstructions (text: string): Instruction[] {
  const out: Instruction[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i].trim()
    if (first === '' || first.startsWith('#')) continue
    const line = i + 1
    let joined = lines[i]
    // a trailing backslash continues the instruction; comment lines inside it are skipped
    while (/\\\s*$/.test(joined) && i + 1 < lines.length) {
      joined = joined.replace(/\\\s*$/, ' ')
      i++
      if (lines[i].trim().startsWith('#')) { joined += '\\'; continue }
      joined += lines[i]
    }
    const m = /^\s*(\S+)\s*(.*)$/.exec(joined) as RegExpExecArray
    out.push({ op: m[1].toUpperCase(), args: m[2].replace(/\s+/g, ' ').trim(), line })
  }
  return out
}

/** Groups instructions by stage (each FROM starts one). Instructions before the first FROM (ARG) are dropped. */
export function parseStages (text: string): Stage[] {
  const stages: Stage[] = []
  for (const ins of parseInstructions(text)) {
    if (ins.op === 'FROM') {
      const words = ins.args.split(' ').filter(w => !w.startsWith('--'))
      const as = words.findIndex(w => w.toUpperCase() === 'AS')
      stages.push({ name: as >= 0 ? words[as + 1] : String(stages.length), image: words[0], instructions: [] })
    } else if (stages.length > 0) stages[stages.length - 1].instructions.push(ins)
  }
  return stages
}

/** Exec-form arguments (`["a", "b"]`) as an array; undefined for shell form. */
export function execForm (args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined
  try {
    const v = JSON.parse(args)
    return Array.isArray(v) && v.every(s => typeof s === 'string') ? v : undefined
  } catch { return undefined }
}

/** `KEY=value KEY2="v 2"` (or the legacy `KEY value`) as a record. */
export function parseEnv (args: string): Record<string, string> {
  const out: Record<string, string> = {}
  if (!args.includes('=')) {
    const [k, ...rest] = args.split(' ')
    out[k] = rest.join(' ')
    return out
  }
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) {
    const raw = m[2]
    out[m[1]] = raw.startsWith('"') ? JSON.parse(raw) : raw.startsWith("'") ? raw.slice(1, -1) : raw
  }
  return out
}

/** A COPY/ADD: its flags (`--from`, `--chown`, ...), sources and destination. */
export function parseCopy (args: string): { flags: Record<string, string>, sources: string[], dest: string } {
  const exec = execForm(args)
  const words = exec ?? args.split(' ')
  const flags: Record<string, string> = {}
  while (words.length > 0 && words[0].startsWith('--')) {
    const [k, v] = (words.shift() as string).slice(2).split('=')
    flags[k] = v ?? 'true'
  }
  const dest = words.pop() as string
  return { flags, sources: words, dest }
}

/** What the lint expects of the image, from the service's own config and package.json. */
export interface ImageExpectations {
  /** The port the service listens on by default. */
  port: number
  /** package.json `main`: what the final CMD must run. */
  entry: string
  /** Least Node major version (package.json engines). */
  nodeMajor: number
}

/**
 * The production properties the image must have; returns one message per problem (none when
 * clean): multi-stage with dev dependencies left behind, a non-root USER, EXPOSE of the service
 * port, a HEALTHCHECK, STOPSIGNAL SIGTERM, tini as PID 1, exec-form CMD running the entry point.
 */
export function lintDockerfile (text: string, expect: ImageExpectations): string[] {
  const problems: string[] = []
  const stages = parseStages(text)
  if (stages.length < 2) return [`multi-stage: expected a build stage and a runtime stage, found ${stages.length} FROM`]
  const final = stages[stages.length - 1]
  const earlier = stages.slice(0, -1)
  const ops = (op: string): Instruction[] => final.instructions.filter(i => i.op === op)
  const last = (op: string): Instruction | undefined => ops(op).pop()

  // multi-stage: the runtime copies its build output from an earlier stage, without dev dependencies
  const fromEarlier = ops('COPY').filter(i => earlier.some(s => s.name === parseCopy(i.args).flags.from))
  if (fromEarlier.length === 0) problems.push('multi-stage: the final stage copies nothing from a build stage')
  const prunes = /npm (prune|ci|install)\b[^&;|]*(--omit[= ]dev|--production)/
  const copiesModules = fromEarlier.some(i => parseCopy(i.args).sources.some(s => /node_modules\/?$/.test(s)))
  const prunedEarlier = earlier.some(s => s.instructions.some(i => i.op === 'RUN' && prunes.test(i.args)))
  if (copiesModules && !prunedEarlier) problems.push('multi-stage: node_modules is copied from a build stage that does not drop dev dependencies (npm prune --omit=dev)')
  if (!copiesModules && !ops('RUN').some(i => prunes.test(i.args))) problems.push('multi-stage: the final stage neither copies pruned node_modules nor installs with --omit=dev')

  for (const [i, s] of stages.entries()) {
    const m = /^node:(\d+)/.exec(s.image)
    if (m === null) problems.push(`FROM ${s.image} (stage ${i}): expected an official node image`)
    else if (Number(m[1]) < expect.nodeMajor) problems.push(`FROM ${s.image}: Node ${m[1]} is older than package.json engines (${expect.nodeMajor})`)
  }

  const user = last('USER')
  const cmd = last('CMD')
  if (user === undefined) problems.push('USER: the final stage runs as root; set a non-root USER')
  else if (/^(root|0)(:|$)/.test(user.args)) problems.push(`USER ${user.args}: must not be root`)
  else if (cmd !== undefined && user.line > cmd.line) problems.push('USER: comes after CMD')

  const exposed = ops('EXPOSE').flatMap(i => i.args.split(' ').map(p => Number(p.split('/')[0])))
  if (!exposed.includes(expect.port)) problems.push(`EXPOSE: ${expect.port} (the service port) is not exposed (${exposed.join(', ') || 'nothing'})`)
  const env: Record<string, string> = Object.assign({}, ...ops('ENV').map(i => parseEnv(i.args)))
  if (env.PORT !== undefined && Number(env.PORT) !== expect.port) problems.push(`ENV PORT=${env.PORT} differs from the service port ${expect.port}`)

  const health = last('HEALTHCHECK')
  if (health === undefined || /^NONE$/i.test(health.args)) problems.push('HEALTHCHECK: missing')
  else if (!/CMD /.test(health.args) || !/\/(healthz|readyz)\b/.test(health.args)) problems.push('HEALTHCHECK: must run a command that probes /healthz or /readyz')

  const stop = last('STOPSIGNAL')
  if (stop?.args !== 'SIGTERM') problems.push(`STOPSIGNAL: expected SIGTERM (what the server drains on), got ${stop?.args ?? 'none'}`)

  // tini as PID 1 forwards SIGTERM to Node and reaps children; Node as PID 1 would ignore the default signal handlers
  const entrypoint = last('ENTRYPOINT')
  const ep = entrypoint === undefined ? undefined : execForm(entrypoint.args)
  if (ep === undefined || !/(^|\/)tini$/.test(ep[0])) problems.push('ENTRYPOINT: expected exec-form ["/usr/bin/tini", "--"] (or another tini path)')
  else if (!final.instructions.some(i => (i.op === 'RUN' || i.op === 'COPY' || i.op === 'ADD') && /tini/.test(i.args))) problems.push('ENTRYPOINT: tini is used but never installed in the final stage')

  const argv = cmd === undefined ? undefined : execForm(cmd.args)
  if (argv === undefined) problems.push('CMD: expected exec form (a shell would sit between tini and Node and swallow signals)')
  else if (argv[0] !== 'node' || argv.at(-1) !== expect.entry || !argv.slice(1, -1).every(a => a.startsWith('--'))) problems.push(`CMD: expected ["node", (node flags,) "${expect.entry}"], got ${JSON.stringify(argv)}`)
  return problems
}
