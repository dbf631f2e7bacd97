/** Where a server's messages go (stderr in the CLI; tests collect them). */
export interface Log {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}
