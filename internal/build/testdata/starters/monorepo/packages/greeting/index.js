export const greeting = 'Hello from the workspace'
