/**
 * A one-line progress bar for a terminal, redrawn in place with a carriage return: a pure
 * renderer (`renderProgressBar`) and a small drawer that keeps the line up to date. Only for a
 * TTY; the caller prints plain lines otherwise. Colour is optional, so NO_COLOR can turn it off.
 */

export interface ProgressCounts {
  readonly done: number;
  readonly total: number;
  readonly healthy: number;
  readonly wouldFail: number;
  readonly errors: number;
  readonly notProbed: number;
  readonly elapsedMs: number;
}

export interface BarStyle {
  /** Cells of the bar itself. Default 24. */
  readonly width?: number;
  /** ANSI colours for the counts. */
  readonly color: boolean;
}

const ANSI = { green: '\u001b[32m', red: '\u001b[31m', yellow: '\u001b[33m', dim: '\u001b[2m', reset: '\u001b[0m' } as const;
// eslint-disable-next-line no-control-regex
const ANSI_SEQUENCE = /\u001b\[[0-9;]*m/g;

/** The visible length of a line, without its colour codes. */
export function visibleLength(line: string): number {
  return line.replace(ANSI_SEQUENCE, '').length;
}

/** `scan [██████░░░░]  6/12  healthy 1  would fail 4  errors 0  not probed 1  3.2s`. */
export function renderProgressBar(counts: ProgressCounts, style: BarStyle): string {
  const width = style.width ?? 24;
  const fraction = counts.total === 0 ? 1 : Math.min(1, counts.done / counts.total);
  const filled = Math.round(fraction * width);
  const paint = (colour: keyof typeof ANSI, text: string) => (style.color ? `${ANSI[colour]}${text}${ANSI.reset}` : text);
  const count = (label: string, n: number, colour: keyof typeof ANSI) => `${label} ${n > 0 ? paint(colour, String(n)) : String(n)}`;
  const digits = String(counts.total).length;
  return [
    `scan [${'█'.repeat(filled)}${paint('dim', '░'.repeat(width - filled))}]`,
    `${String(counts.done).padStart(digits)}/${counts.total}`,
    count('healthy', counts.healthy, 'green'),
    count('would fail', counts.wouldFail, 'red'),
    count('errors', counts.errors, 'yellow'),
    `not probed ${counts.notProbed}`,
    `${(counts.elapsedMs / 1000).toFixed(1)}s`,
  ].join('  ');
}

/**
 * Draws the bar on a TTY: each update overwrites the line (`\r`, padded over a longer previous
 * one), a timer keeps the elapsed time moving between updates, `finish` ends the line.
 */
export class ProgressBar {
  private counts: Omit<ProgressCounts, 'elapsedMs'> | undefined;
  private lastLength = 0;
  private readonly timer: ReturnType<typeof setInterval>;

  public constructor(
    private readonly write: (text: string) => void,
    private readonly style: BarStyle,
    private readonly started: number = Date.now(),
    private readonly now: () => number = Date.now,
  ) {
    this.timer = setInterval(() => this.draw(), 250);
    this.timer.unref();
  }

  public update(counts: Omit<ProgressCounts, 'elapsedMs'>): void {
    this.counts = counts;
    this.draw();
  }

  public finish(): void {
    clearInterval(this.timer);
    this.draw();
    if (this.lastLength > 0) this.write('\n');
  }

  private draw(): void {
    if (this.counts === undefined) return;
    const line = renderProgressBar({ ...this.counts, elapsedMs: this.now() - this.started }, this.style);
    const length = visibleLength(line);
    this.write(`\r${line}${' '.repeat(Math.max(0, this.lastLength - length))}`);
    this.lastLength = length;
  }
}
