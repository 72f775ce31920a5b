// Live updates of a run page: while the run is waiting or running, the server pushes an event
// (server-sent events) whenever the run changes, and the page swaps in the new detail fragment.
(function () {
  'use strict';
  var detail = document.getElementById('run-detail');
  if (!detail || detail.getAttribute('data-live') !== 'true' || !window.EventSource) {
    return;
  }
  var run = detail.getAttribute('data-run');
  var source = new EventSource('/runs/' + encodeURIComponent(run) + '/events');
  source.addEventListener('update', function () {
    fetch('/runs/' + encodeURIComponent(run) + '/fragment', { credentials: 'same-origin' })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html !== null) { detail.innerHTML = html; } });
  });
  source.addEventListener('end', function () { source.close(); });
})();
