import './core.js';
import './conv.js';
import './pool.js';
import './norm.js';
import './attention.js';
import './optim.js';
