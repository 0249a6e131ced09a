/**
 * Where the cluster object writes what is not a result: watch frames, download progress,
 * notes. The interactive session gives its terminal (Ctrl-C interrupts); `-e` gives plain
 * stdout and stderr (SIGINT interrupts).
 */

export interface Screen {
  /** A terminal: frames are redrawn in place, progress is shown. */
  readonly interactive: boolean
  /** Its width, for redrawing. */
  readonly columns?: number
  write (text: string): void
  /** A note for the operator, one line (stderr with -e). */
  note (line: string): void
  /** Resolves at the next Ctrl-C. */
  interrupted (): Promise<void>
  /** True while something holds the terminal (an evaluation, a watch, an editor): live lines wait. */
  busy?: () => boolean
}

/** For `-e`: results on stdout, notes on stderr, SIGINT ends a watch. */
export const plainScreen: Screen = {
  interactive: false,
  write: (text) => { process.stdout.write(text) },
  note: (line) => { process.stderr.write(line + '\n') },
  interrupted: async () => { await new Promise<void>((resolve) => process.once('SIGINT', () => resolve())) }
}
