// pm2 process file for hydra-server:
//
//   pm2 start deploy/ecosystem.config.js && pm2 save
//
// or, without this file, the one-liner:
//
//   pm2 start /usr/local/bin/hydra-server --name hydra-server --interpreter none -- --config /etc/hydra/hydra.conf
//
// pm2 sends SIGINT to stop (kill_signal below makes it SIGTERM); either
// shuts hydra-server down gracefully. Logs (stderr): pm2 logs hydra-server.
module.exports = {
  apps: [
    {
      name: "hydra-server",
      script: "/usr/local/bin/hydra-server",
      args: ["--config", "/etc/hydra/hydra.conf"],
      interpreter: "none", // a native binary, not a Node script
      exec_mode: "fork",
      instances: 1, // one registry per host: a second would find the port taken
      autorestart: true,
      restart_delay: 1000,
      kill_signal: "SIGTERM",
      kill_timeout: 10000,
      max_memory_restart: "512M",
      env: {
        // Any option as HYDRA_<FLAG>; flags in args win.
        HYDRA_LOG_FORMAT: "json",
      },
    },
  ],
};
