/** The C library's text for the `errno` codes a rescue meets (`strerror`), as ddrescue prints them. */
const TEXT: Readonly<Record<string, string>> = {
  EACCES: 'Permission denied',
  EBADF: 'Bad file descriptor',
  EBUSY: 'Device or resource busy',
  EINVAL: 'Invalid argument',
  EIO: 'Input/output error',
  EISDIR: 'Is a directory',
  ENOBUFS: 'No buffer space available',
  ENODEV: 'No such device',
  ENOENT: 'No such file or directory',
  ENOMEM: 'Cannot allocate memory',
  ENOSPC: 'No space left on device',
  ENOSYS: 'Function not implemented',
  ENXIO: 'No such device or address',
  EPERM: 'Operation not permitted',
  EROFS: 'Read-only file system',
  ESPIPE: 'Illegal seek',
};

export function strerror(code: string): string {
  return TEXT[code] ?? code;
}
