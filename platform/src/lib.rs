//! a3m-platform: the operating-system event sources a3m's std runtime waits on.
