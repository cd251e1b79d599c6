// The board of a task, as its plugin describes it through the trm_board_view hook (trm_modules/boards.py):
// shared by the SCORM and cmi5 activity (activity.js), the LTI activity (inlined by adapters/lti/pages.py) and
// the dashboard's failing inputs.
//   trmBoard.render(container, view, tokens, { answer })  read-only cells; `answer` marks the module's cells
//   trmBoard.editor(container, view, tokens, onEdit)        the learner's board: .get(), .set(), .mark() …
//   trmBoard.followsRules(view, tokens, answer)             the page's rule check: true, false, or null (no answer)
//   trmBoard.grade(view, tokens, solution, response, moduleCells)  the learner's score on one puzzle
// view: { rows, cols, box_rows, box_cols, blank_token, choices, labels, classes, entry, instructions, rules }.
"use strict";

(function () {
  const label = (view, token) => {
    const text = view.labels[String(token)];
    return text === undefined ? "" : text;
  };
  const tokenClass = (view, token) => (view.classes || {})[String(token)] || "";

  // Thick lines between boxes, and a cell size that keeps large grids on the page.
  function layout(container, view, cellRem) {
    container.style.gridTemplateColumns = `repeat(${view.cols}, var(--cell))`;
    const size = view.cols <= 9 ? cellRem : Math.max(0.9, (cellRem * 9) / view.cols);
    container.style.setProperty("--cell", `${size}rem`);
  }
  function borders(cell, view, i) {
    const row = Math.floor(i / view.cols), col = i % view.cols;
    if (view.box_cols && (col + 1) % view.box_cols === 0 && col + 1 < view.cols) cell.classList.add("box-right");
    if (view.box_rows && (row + 1) % view.box_rows === 0 && row + 1 < view.rows) cell.classList.add("box-bottom");
    return { row, col };
  }

  function render(container, view, tokens, options) {
    const answer = (options && options.answer) || null;
    container.innerHTML = "";
    container.classList.add("trm-board");
    container.setAttribute("role", "img");
    layout(container, view, 1.6);
    const described = [];
    tokens.forEach((token, i) => {
      const cell = document.createElement("span");
      borders(cell, view, i);
      let shown = token;
      if (token !== view.blank_token) {
        cell.classList.add("given");
      } else if (answer && answer[i] !== undefined && answer[i] !== view.blank_token) {
        shown = answer[i];
        cell.classList.add("module");
      }
      cell.textContent = label(view, shown);
      if (tokenClass(view, shown)) cell.classList.add(tokenClass(view, shown));
      described.push(cell.textContent || (tokenClass(view, shown) || "."));
      container.appendChild(cell);
    });
    const rows = [];
    for (let r = 0; r < view.rows; r++) rows.push(described.slice(r * view.cols, (r + 1) * view.cols).join(" "));
    container.setAttribute("aria-label", `puzzle, ${view.rows} by ${view.cols}: ${rows.join("; ")}`);
  }

  // The learner's board. Typed entry: one <input> per cell (givens read-only). Click entry: one <button> per
  // cell, an editable one cycling through the view's choices. onEdit(i) runs after the learner changes cell i.
  function editor(container, view, tokens, onEdit) {
    container.innerHTML = "";
    layout(container, view, 3);
    const click = view.entry === "click";
    const current = tokens.slice();
    const cells = tokens.map((token, i) => {
      const editable = token === view.blank_token;
      const cell = document.createElement(click ? "button" : "input");
      const { row, col } = borders(cell, view, i);
      cell.setAttribute("aria-label", `row ${row + 1} column ${col + 1}`);
      cell.dataset.index = String(i);
      if (click) {
        cell.type = "button";
        cell.disabled = !editable;
        if (editable) {
          cell.addEventListener("click", () => {
            const at = view.choices.indexOf(current[i]);
            show(i, view.choices[(at + 1) % view.choices.length]);
            cell.classList.remove("right", "wrong");
            if (onEdit) onEdit(i);
          });
        }
      } else {
        cell.inputMode = "numeric";
        cell.maxLength = 2;
        cell.readOnly = !editable;
        if (editable) {
          cell.addEventListener("input", () => {
            current[i] = tokenOfLabel(cell.value);
            cell.classList.remove("right", "wrong");
            if (onEdit) onEdit(i);
          });
        }
      }
      if (!editable) cell.classList.add("given");
      container.appendChild(cell);
      return cell;
    });
    function tokenOfLabel(text) {
      const found = view.choices.find((t) => label(view, t) === text.trim() && label(view, t) !== "");
      return found === undefined ? view.blank_token : found;
    }
    function show(i, token) {
      const cell = cells[i];
      const before = tokenClass(view, current[i]);
      if (before) cell.classList.remove(before);
      current[i] = token;
      if (tokenClass(view, token)) cell.classList.add(tokenClass(view, token));
      if (click) {
        cell.textContent = label(view, token);
        cell.setAttribute("aria-pressed", String(token !== view.blank_token));
      } else {
        cell.value = token === view.blank_token ? "" : label(view, token);
      }
    }
    tokens.forEach((token, i) => show(i, token));
    return {
      cells,
      editable: (i) => tokens[i] === view.blank_token,
      get: () => current.slice(),
      set(i, token, byModule) {
        show(i, token);
        cells[i].classList.remove("right", "wrong");
        if (byModule) cells[i].classList.add("module");
      },
      mark(i, right) {
        cells[i].classList.toggle("right", right);
        cells[i].classList.toggle("wrong", !right);
      },
    };
  }

  // The rules of the view (trm_modules.boards): the givens kept, every edited cell one of the choices, and each
  // rule satisfied. null: the tokens form no answer.
  function followsRules(view, tokens, answer) {
    const choices = new Set(view.choices);
    if (answer.length !== tokens.length) return null;
    for (let i = 0; i < tokens.length; i += 1) {
      if (tokens[i] === view.blank_token) {
        if (!choices.has(answer[i])) return null;
      } else if (answer[i] !== tokens[i]) {
        return false;
      }
    }
    return (view.rules || []).every((rule) => {
      if (rule.kind === "all-different") {
        const ignore = new Set(rule.ignore || []);
        return rule.groups.every((group) => {
          const counted = group.map((i) => answer[i]).filter((t) => !ignore.has(t));
          return new Set(counted).size === counted.length;
        });
      }
      if (rule.kind === "shortest-path") return shortestPath(view, rule, tokens, answer);
      return false;
    });
  }

  // Breadth-first distance from the start to the goal over the cells `through` lets in (4-neighbourhood).
  function distance(view, from, to, through) {
    const seen = new Map([[from, 0]]);
    const queue = [from];
    while (queue.length) {
      const cell = queue.shift();
      if (cell === to) return seen.get(cell);
      const r = Math.floor(cell / view.cols), c = cell % view.cols;
      for (const [dr, dc] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
        const nr = r + dr, nc = c + dc;
        if (nr < 0 || nc < 0 || nr >= view.rows || nc >= view.cols) continue;
        const next = nr * view.cols + nc;
        if (!seen.has(next) && (next === to || through(next))) {
          seen.set(next, seen.get(cell) + 1);
          queue.push(next);
        }
      }
    }
    return Infinity;
  }
  function shortestPath(view, rule, tokens, answer) {
    const start = tokens.indexOf(rule.start), goal = tokens.indexOf(rule.goal);
    if (start < 0 || goal < 0) return false;
    const passable = new Set(rule.passable);
    const best = distance(view, start, goal, (i) => passable.has(tokens[i]));
    const marked = answer.filter((t) => t === rule.path).length;
    if (best === Infinity) return marked === 0;
    const along = distance(view, start, goal, (i) => answer[i] === rule.path);
    return along === best && marked === best - 1;
  }

  // One puzzle's score: the cells to fill are the editable cells whose solution differs from the blank; one
  // earns a point when right and never filled by the module. Marks where the solution leaves the blank are
  // wrong marks: each takes a point back, and any one fails the puzzle.
  function grade(view, tokens, solution, response, moduleCells) {
    const result = { blanks: 0, right: 0, mine: 0, byModule: 0, extra: 0, response, cells: [] };
    tokens.forEach((token, i) => {
      if (token !== view.blank_token) return;
      const right = response[i] === solution[i];
      if (solution[i] === view.blank_token) {
        if (!right) {
          result.extra += 1;
          result.cells.push({ index: i, right, byModule: moduleCells.has(i) });
        }
        return;
      }
      const byModule = moduleCells.has(i);
      result.blanks += 1;
      result.right += right ? 1 : 0;
      result.byModule += byModule ? 1 : 0;
      result.mine += right && !byModule ? 1 : 0;
      result.cells.push({ index: i, right, byModule });
    });
    result.scaled = result.blanks ? Math.max(0, result.mine - result.extra) / result.blanks : 1;
    result.success = result.mine === result.blanks && result.extra === 0;
    return result;
  }

  window.trmBoard = { render, editor, followsRules, grade, label };
})();
