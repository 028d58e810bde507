// The run's JSONL log: one JSON object per line (steps, epochs, evaluations). Its byte length is
// stored in each checkpoint, so a resume cuts the lines written after that checkpoint and the log
// reads as if the run had never stopped.
import { appendFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { writeFileAtomic } from '@foliar/tensor';

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
  /**
   * Keeps the first `n` bytes (a checkpoint's position; 0 for a fresh start), rewriting the file
   * atomically: a kill during the resume leaves the old log, never a half-cut one.
   */
  async truncate(n: number): Promise<void> {
    if (!existsSync(this.path)) {
      if (n !== 0) throw new Error(`${this.path}: log missing, the checkpoint expects ${n} bytes`);
      this.size = 0;
      return;
    }
    const data = readFileSync(this.path);
    if (data.length < n) throw new Error(`${this.path}: log has ${data.length} bytes, shorter than the ${n} the checkpoint recorded`);
    if (data.length > n) await writeFileAtomic(this.path, data.subarray(0, n));
    this.size = n;
  }
}
