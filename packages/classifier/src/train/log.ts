// The run's JSONL log: one JSON object per line (steps, epochs, evaluations). Its byte length is
// stored in each checkpoint, so a resume truncates the lines written after that checkpoint and the
// log reads as if the run had never stopped.
import { appendFileSync, existsSync, statSync, truncateSync } from 'node:fs';

export class JsonlLog {
  private size: number;
  constructor(readonly path: string) {
    this.size = existsSync(path) ? statSync(path).size : 0;
  }
  get bytes(): number {
    return this.size;
  }
  write(record: Record<string, unknown>): void {
    const line = JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n';
    appendFileSync(this.path, line);
    this.size += Buffer.byteLength(line);
  }
  /** Drops everything after byte `n` (a checkpoint's position). */
  truncate(n: number): void {
    if (!existsSync(this.path)) {
      if (n !== 0) throw new Error(`${this.path}: log missing, the checkpoint expects ${n} bytes`);
      return;
    }
    const size = statSync(this.path).size;
    if (size < n) throw new Error(`${this.path}: log has ${size} bytes, shorter than the ${n} the checkpoint recorded`);
    truncateSync(this.path, n);
    this.size = n;
  }
}
