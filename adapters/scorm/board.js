// The board of a fill-in grid task, drawn as the SCORM, cmi5 and LTI activities draw it (the same cells,
// classes and box borders as activity.js's render(), styled by activity.css's #board rules), for pages that
// show a task input without the activity around it: the dashboard's failing inputs.
// trmBoard.render(container, view, tokens, { answer }) fills `container` with read-only cells; `answer`
// (tokens) marks the module's cells. view: { rows, cols, box_rows, box_cols, blank_token, labels }.
"use strict";

(function () {
  function render(container, view, tokens, options) {
    const answer = (options && options.answer) || null;
    container.innerHTML = "";
    container.classList.add("trm-board");
    container.setAttribute("role", "img");
    container.style.gridTemplateColumns = `repeat(${view.cols}, 1.6rem)`;
    const described = [];
    tokens.forEach((token, i) => {
      const cell = document.createElement("span");
      const row = Math.floor(i / view.cols), col = i % view.cols;
      if ((col + 1) % view.box_cols === 0 && col + 1 < view.cols) cell.classList.add("box-right");
      if ((row + 1) % view.box_rows === 0 && row + 1 < view.rows) cell.classList.add("box-bottom");
      if (token !== view.blank_token) {
        cell.textContent = view.labels[String(token)];
        cell.classList.add("given");
      } else if (answer && answer[i] !== undefined && answer[i] !== view.blank_token) {
        cell.textContent = view.labels[String(answer[i])] || "";
        cell.classList.add("module");
      }
      described.push(cell.textContent || ".");
      container.appendChild(cell);
    });
    const rows = [];
    for (let r = 0; r < view.rows; r++) rows.push(described.slice(r * view.cols, (r + 1) * view.cols).join(" "));
    container.setAttribute("aria-label", `puzzle, ${view.rows} by ${view.cols}: ${rows.join("; ")}`);
  }

  window.trmBoard = { render };
})();
