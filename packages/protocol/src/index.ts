// The public API of this package is built in its own issue; nothing is exported yet.
export {};
