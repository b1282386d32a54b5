// The templates `stratum init` starts from, apart from the code that copies them: the CLI lists
// them in its help without loading the SDK's build (and its manifest parser).
export const TEMPLATES = ['hello', 'counter', 'notes', 'gallery'] as const;
export type TemplateName = (typeof TEMPLATES)[number];
