#!/bin/busybox ash
# Stand-in for the simapp image's /opt/ml/code/run.sh (deepracer-simapp docker/files/run.sh): works out the
# worker's number the same way, then runs the stand-in simulation instead of ROS 2 and Gazebo.
if [ -z "$ROLLOUT_IDX" ]; then
	export ROLLOUT_IDX=0
fi
if [ "$1" = "multi" ]; then
	# Swarm's replica slot when there is one; otherwise an election through the shared comms folder.
	if [ -n "$DOCKER_REPLICA_SLOT" ]; then
		WORKER_NUM=$DOCKER_REPLICA_SLOT
	else
		echo "$HOSTNAME" >> /mnt/comms/workers
		WORKER_NUM=$(grep -n "$HOSTNAME" /mnt/comms/workers | cut -d: -f1)
	fi
	export ROLLOUT_IDX=$(expr "$WORKER_NUM" - 1)
elif [ "$1" != "run" ]; then
	echo "run.sh: unknown mode '$1' (expected run or multi)"
	exit 2
fi
case "$2" in
	distributed_training.launch.py|distributed_training.launch) ;;
	*) echo "run.sh: unknown launch file '$2'"; exit 2 ;;
esac
export DEEPRACER_JOB_TYPE_ENV="LOCAL"
# The simapp's launch file starts ROS web_video_server beside the simulation; so does the stand-in.
python3 /opt/ml/code/standin/web_video_server.py 8080 &
exec python3 /opt/ml/code/standin/robomaker.py "$@"
