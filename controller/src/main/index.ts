export { defaultDataDir, runController, type ControllerOptions, type RunningController } from './run-controller.js';
