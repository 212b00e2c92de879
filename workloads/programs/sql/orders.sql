-- orders.sql: an order-processing database in sqlite3, in memory.
--
-- Allocation pattern it stands for: an embedded SQL engine. sqlite's page
-- cache holds long-lived page buffers; each statement allocates its parsed
-- form, a VDBE program and result rows that die when the statement ends;
-- index builds and sorts allocate large temporary buffers. One thread.
--
-- Deterministic: every row comes from recursive CTEs over fixed ranges.
PRAGMA cache_size = -4000;
CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, city TEXT);
CREATE TABLE product(id INTEGER PRIMARY KEY, title TEXT, price REAL);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, product INTEGER, qty INTEGER, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
  INSERT INTO customer SELECT i, 'customer-' || i, 'city-' || (i % 37) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
  INSERT INTO product SELECT i, 'product ' || i || ' ' || substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 20), (i % 97) * 1.25 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
  INSERT INTO orders SELECT i, 1 + (i * 7919) % 2000, 1 + (i * 104729) % 500, 1 + i % 9,
                            printf('%.*c', i % 60, 'x') FROM n;
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_product ON orders(product);
SELECT c.city, count(*), sum(o.qty * p.price) FROM orders o JOIN customer c ON c.id = o.customer
  JOIN product p ON p.id = o.product GROUP BY c.city ORDER BY 3 DESC LIMIT 5;
SELECT p.title, sum(o.qty) AS q FROM orders o JOIN product p ON p.id = o.product GROUP BY p.id ORDER BY q DESC LIMIT 5;
UPDATE orders SET note = note || '-shipped' WHERE id % 3 = 0;
DELETE FROM orders WHERE id % 5 = 0;
SELECT count(*), max(length(note)) FROM orders;
SELECT group_concat(name, ',') FROM (SELECT name FROM customer WHERE id % 50 = 0 ORDER BY name DESC);
DROP INDEX orders_product;
SELECT customer, count(*) FROM orders GROUP BY customer HAVING count(*) > 12 ORDER BY 2 DESC LIMIT 3;
