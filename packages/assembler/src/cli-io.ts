/** The outside world of the assembler's commands; tests give their own. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** True if stderr is a terminal: the progress is redrawn in place. */
  readonly stderrIsTty?: boolean | undefined;
}
