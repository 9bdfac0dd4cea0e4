// ECharts glue: one instance per container, resized with its container, and the test
// hooks `data-rendered="true"` / `data-points="N"` set once ECharts has drawn the data.
// `echarts` is the global of /assets/echarts.min.js (a classic script, loaded first).

/* global echarts */

/** The palette: restrained, distinguishable, print-friendly. */
export const PALETTE = ['#2f5d8a', '#3f8f7f', '#c2703d', '#7a5c99', '#b5483b', '#6f8f3a', '#a08a5c', '#4d7ea8', '#9c6b7d', '#5b7083'];
export const POSITIVE = '#2f7d6d';
export const NEGATIVE = '#b5483b';
const TEXT = '#2b3440';
const MUTED = '#6b7785';
const GRID = '#e6e9ee';

/** Common option defaults, merged under every chart's own option. */
function base(option) {
  return {
    color: PALETTE,
    animationDuration: 300,
    animationDurationUpdate: 200,
    textStyle: {
      fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
      color: TEXT,
    },
    tooltip: { confine: true, ...(option.tooltip || {}) },
    ...option,
  };
}

/** Axis styling shared by the cartesian charts. */
export function valueAxis(extra = {}) {
  return {
    type: 'value',
    axisLabel: { color: MUTED },
    splitLine: { lineStyle: { color: GRID } },
    ...extra,
  };
}
export function categoryAxis(data, extra = {}) {
  return {
    type: 'category',
    data,
    axisLabel: { color: TEXT },
    axisLine: { lineStyle: { color: '#c5ccd6' } },
    axisTick: { show: false },
    ...extra,
  };
}

// One ResizeObserver for all chart containers.
const observer = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const chart = echarts.getInstanceByDom(entry.target);
    if (chart && entry.contentRect.width > 0) chart.resize();
  }
});

/**
 * Draws `option` in container `el` (replacing what was there) and, once ECharts reports
 * the frame finished, marks it with data-rendered="true" and data-points=`points`.
 * `onClick` (optional) receives ECharts click events on data items.
 */
export function renderChart(el, option, points, onClick) {
  let chart = echarts.getInstanceByDom(el);
  if (!chart) {
    chart = echarts.init(el, null, { renderer: 'canvas' });
    observer.observe(el);
  }
  el.removeAttribute('data-rendered');
  el.dataset.points = String(points);
  chart.off('finished');
  chart.on('finished', () => {
    chart.off('finished');
    el.dataset.rendered = 'true';
  });
  chart.off('click');
  if (onClick) chart.on('click', onClick);
  if (points === 0) {
    option = {
      ...option,
      graphic: {
        type: 'text',
        left: 'center',
        top: 'middle',
        style: { text: 'No data', fill: MUTED, fontSize: 14 },
      },
    };
  }
  chart.setOption(base(option), { notMerge: true });
  chart.resize(); // the container may have changed size while hidden
  return chart;
}

/** Clears a chart container (e.g. while loading or after an error). */
export function clearChart(el) {
  const chart = echarts.getInstanceByDom(el);
  if (chart) chart.clear();
  el.removeAttribute('data-rendered');
  el.removeAttribute('data-points');
}

/** Resizes every chart inside `root` (after a hidden view becomes visible). */
export function resizeCharts(root) {
  for (const el of root.querySelectorAll('[data-chart]')) {
    const chart = echarts.getInstanceByDom(el);
    if (chart) chart.resize();
  }
}
